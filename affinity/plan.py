"""Partition plans: which CPUs and memory nodes each of N instances owns.

The planner mimics how a hypervisor places same-sized VMs on a host:

- it counts physical cores, never CPU numbers; one hardware thread per core unless
  ``smt=True``, and then all usable siblings of a core go to the same partition;
- partitions are balanced (core counts differ by at most one) unless
  ``cores_per_instance`` fixes their size, and then leftover cores stay idle;
- it is NUMA-aware: as many partitions as possible lie inside one node (so straddling is
  kept to the fewest partitions) and straddlers touch as few nodes as they can, which
  gives whole nodes per partition when the instances divide the nodes evenly;
- a partition's memory nodes are exactly the nodes of its CPUs;
- more instances than cores only with ``oversubscribe=True``: cores are then shared
  round-robin and the plan says by how much.

Inside a node, cores are taken in (package, die, core id) order and every partition that
fits in a node is one contiguous run of them, so it is as local as the machine allows. The
layout search over core positions is ``affinity.numalayout``; this module turns it into
partitions and says what a user should know about them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from affinity.cpulist import format_cpulist
from affinity.errors import PlanError
from affinity.numalayout import numa_layout
from affinity.topology import Core, Topology


@dataclass(frozen=True)
class Partition:
    """The CPUs and memory nodes one instance owns; ``cores`` counts physical cores."""

    index: int
    cpus: tuple[int, ...]
    nodes: tuple[int, ...]
    cores: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "cpus": list(self.cpus),
            "cpulist": format_cpulist(self.cpus),
            "nodes": list(self.nodes),
            "cores": self.cores,
        }


@dataclass(frozen=True)
class Plan:
    """One partition per instance, and what a user should know about the layout."""

    partitions: tuple[Partition, ...]
    oversubscribed: bool
    oversubscription: float
    warnings: tuple[str, ...]
    smt: bool
    cores_per_instance: int | None = None
    usable_cores: int = 0
    idle_cores: int = 0

    @property
    def straddling(self) -> tuple[int, ...]:
        """Indices of the partitions whose CPUs lie in more than one NUMA node."""
        return tuple(p.index for p in self.partitions if len(p.nodes) > 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``scaler plan --json``."""
        return {
            "instances": len(self.partitions),
            "cores_per_instance": self.cores_per_instance,
            "smt": self.smt,
            "usable_cores": self.usable_cores,
            "idle_cores": self.idle_cores,
            "oversubscribed": self.oversubscribed,
            "oversubscription": self.oversubscription,
            "straddling": list(self.straddling),
            "partitions": [p.to_dict() for p in self.partitions],
            "warnings": list(self.warnings),
        }


def plan(
    topology: Topology,
    instances: int,
    cores_per_instance: int | None = None,
    smt: bool = False,
    oversubscribe: bool = False,
) -> Plan:
    """Plan ``instances`` partitions of ``topology``'s usable cores (see the module doc).

    Raises :class:`PlanError` for fewer than one instance, a partition size below one or
    above the usable cores, and for more demand than cores without ``oversubscribe``.
    """
    if instances < 1:
        raise PlanError(f"instances must be at least 1, got {instances}")
    if cores_per_instance is not None and cores_per_instance < 1:
        raise PlanError(f"cores per instance must be at least 1, got {cores_per_instance}")
    by_node = _cores_by_node(topology)
    order = [core for cores in by_node.values() for core in cores]
    total = len(order)
    if total == 0:
        raise PlanError(f"no usable physical cores in the topology of {topology.sysfs_root}")
    size = cores_per_instance or 1
    if size > total:
        raise PlanError(f"{size} cores per instance is more than the {total} usable physical cores")
    demand = instances * size
    if demand > total and not oversubscribe:
        raise PlanError(
            f"{instances} instances x {size} core(s) need {demand} physical cores but only "
            f"{total} are usable; allow oversubscription (--oversubscribe) to share cores"
        )
    if demand > total:
        groups = [[(i * size + t) % total for t in range(size)] for i in range(instances)]
    else:
        caps = [len(cores) for cores in by_node.values()]
        groups = numa_layout(caps, instances, cores_per_instance)
    sharing = Counter(pos for group in groups for pos in group)
    oversubscription = float(max(sharing.values()))
    partitions = tuple(
        _partition(index, [order[pos] for pos in group], smt) for index, group in enumerate(groups)
    )
    draft = Plan(
        partitions=partitions,
        oversubscribed=oversubscription > 1,
        oversubscription=oversubscription,
        warnings=(),
        smt=smt,
        cores_per_instance=cores_per_instance,
        usable_cores=total,
        idle_cores=total - len(sharing),
    )
    return replace(draft, warnings=_warnings(topology, draft, order, demand))


def _cores_by_node(topology: Topology) -> dict[int, list[Core]]:
    """Usable cores per node (nodes by id), each node's in (package, die, core id) order."""
    by_node: dict[int, list[Core]] = {}
    for core in sorted(topology.usable_cores, key=lambda c: (c.node, c.key)):
        by_node.setdefault(core.node, []).append(core)
    return by_node


def _partition(index: int, cores: list[Core], smt: bool) -> Partition:
    """A partition of whole cores: all usable siblings with SMT, else the first of each."""
    cpus = sorted(cpu for core in cores for cpu in (core.cpus if smt else core.cpus[:1]))
    nodes = sorted({core.node for core in cores})
    return Partition(index, tuple(cpus), tuple(nodes), len(cores))


def _warnings(topology: Topology, result: Plan, order: list[Core], demand: int) -> tuple[str, ...]:
    """One line for each thing about the layout that a user should know."""
    out: list[str] = []
    parts = result.partitions
    n, total = len(parts), result.usable_cores
    if result.oversubscribed:
        out.append(
            f"oversubscribed: {n} instances x {demand // n} core(s) on {total} usable cores, "
            f"up to {result.oversubscription:g} instances share a core "
            f"({demand / total:.2f} on average)"
        )
    straddling = [p for p in parts if len(p.nodes) > 1]
    if straddling:
        shown = "; ".join(f"{p.index}: nodes {format_cpulist(p.nodes)}" for p in straddling[:8]) + (
            "; ..." if len(straddling) > 8 else ""
        )
        out.append(
            f"{len(straddling)} of {n} partitions span more than one NUMA node, their memory "
            f"is split between nodes ({shown})"
        )
    if result.idle_cores:
        out.append(f"{result.idle_cores} of {total} usable cores stay idle")
    sizes = Counter(p.cores for p in parts)
    if len(sizes) > 1:
        out.append("partition sizes differ: " + _counted(sizes, "core"))
    cpu_sizes = Counter(len(p.cpus) for p in parts)
    if result.smt and len(cpu_sizes) > 1:
        out.append("partitions get different numbers of CPUs: " + _counted(cpu_sizes, "CPU"))
    siblings = sum(len(core.cpus) - 1 for core in order)
    if not result.smt and siblings:
        out.append(
            f"one hardware thread per core: {siblings} usable SMT sibling CPUs stay unused "
            f"(with --smt each partition gets its cores' siblings too)"
        )
    kinds = _kinds(parts, order)
    if len(set(kinds.values())) > 1:
        out.append(
            "hybrid CPU: partitions get different core types, so their speed differs ("
            + "; ".join(f"{i}: {kind}" for i, kind in kinds.items())
            + ")"
        )
    for node in topology.nodes:
        if not node.has_cpu and node.memory_bytes:
            out.append(
                f"node {node.id} has memory but no CPUs (CXL or similar): no partition binds it"
            )
    out.extend(topology.notes)
    return tuple(out)


def _counted(sizes: Counter[int], unit: str) -> str:
    ordered = sorted(sizes.items(), reverse=True)
    return ", ".join(f"{count} with {size} {unit}s" for size, count in ordered)


def _kinds(parts: tuple[Partition, ...], order: list[Core]) -> dict[int, str]:
    """Each partition's core types on a hybrid CPU ("performance+efficiency" when mixed)."""
    kind_of = {cpu: core.kind for core in order for cpu in core.cpus}
    return {
        p.index: "+".join(sorted({kind_of[c] for c in p.cpus if kind_of[c]}))
        for p in parts
        if any(kind_of[c] for c in p.cpus)
    }
