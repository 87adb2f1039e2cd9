"""Where each simulated instance runs, as flat arrays for the compiled kernel.

A layout is the CPUs, thread count and memory nodes of every instance plus the machine's CPU ->
core -> node maps. Simulated layouts come from the placement's own planner through
``scaler.groupcpus.plan_group`` (the plan the lock and the session use: ``smt``,
``cores_per_instance`` and ``oversubscribe`` passed through), so a simulated pinned or vm
instance gets exactly the partition ``scaler scaling`` would give it, and its memory nodes
are the ones the plan binds (none for an unbound instance); layouts of measured groups are
rebuilt from the partitions and memory bindings the run recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from affinity import Topology
from scaler.errors import UsageError


@dataclass(frozen=True)
class Layout:
    """Instances' CPUs as CSR arrays (``ptr``, ``cpus``) over the machine's usable CPUs, and
    the node indices their memory is bound to (``mptr``, ``mnodes``; none: unbound)."""

    placement: str
    ptr: Any
    cpus: Any
    threads: Any
    mptr: Any
    mnodes: Any
    cpu_core: Any
    core_node: Any
    node_size: Any
    n_cores: int
    partitions: tuple[dict[str, Any], ...]
    oversubscribed: bool
    oversubscription: float
    warnings: tuple[str, ...] = ()
    cores_per_instance: int | None = None  # when the placement planned fixed-size instances

    @property
    def instances(self) -> int:
        return len(self.partitions)

    def arrays(self) -> tuple[Any, ...]:
        """The kernel's layout arguments, in its order."""
        return (self.ptr, self.cpus, self.threads, self.mptr, self.mnodes, self.cpu_core,
                self.core_node, self.node_size, self.n_cores)


def _machine_maps(topo: Topology) -> tuple[dict[int, int], Any, Any, Any, dict[int, int]]:
    """Usable CPU -> index, CPU index -> core index, core -> node index, node sizes.

    A node's size counts all its online physical cores, usable or not: memory bandwidth
    and cache are shared with cores this process may not use.
    """
    import numpy as np

    tpc = max(topo.threads_per_core, 1)
    node_index = {node.id: k for k, node in enumerate(topo.nodes)}
    cpu_index = {cpu: k for k, cpu in enumerate(topo.usable_cpus)}
    cpu_core = np.zeros(len(cpu_index), np.int64)
    core_node = np.zeros(len(topo.usable_cores), np.int64)
    for k, core in enumerate(topo.usable_cores):
        core_node[k] = node_index[core.node]
        for cpu in core.cpus:
            cpu_core[cpu_index[cpu]] = k
    node_size = np.array([max(-(-len(node.cpus) // tpc), 1) for node in topo.nodes], float)
    return cpu_index, cpu_core, core_node, node_size, node_index


def build_layout(topo: Topology, placement: str,
                 parts: list[tuple[list[int], int, list[int] | None]], oversubscription: float,
                 warnings: tuple[str, ...] = (), cores_per_instance: int | None = None,
                 oversubscribed: bool | None = None) -> Layout:
    """``parts``: each instance's CPUs, threads and memory nodes (None: unbound);
    ``oversubscribed``: the placement's own verdict, as measured runs record it (``shared``
    counts instances against cores, not threads); None: more threads than CPUs."""
    import numpy as np

    cpu_index, cpu_core, core_node, node_size, node_index = _machine_maps(topo)
    node_of = {cpu: core.node for core in topo.usable_cores for cpu in core.cpus}
    ptr, flat, threads, mptr, mflat, records = [0], [], [], [0], [], []
    for cpus, nthreads, memory in parts:
        missing = [c for c in cpus if c not in cpu_index]
        if missing:
            raise UsageError(f"CPU {missing[0]} of a partition is not a usable CPU of the "
                             "machine")
        unknown = [m for m in memory or () if m not in node_index]
        if unknown:
            raise UsageError(f"memory node {unknown[0]} of a partition is not a node of the "
                             "machine")
        flat += [cpu_index[c] for c in cpus]
        ptr.append(len(flat))
        threads.append(float(nthreads))
        mflat += [node_index[m] for m in sorted(set(memory or ()))]
        mptr.append(len(mflat))
        records.append({"cpus": list(cpus), "nodes": sorted({node_of[c] for c in cpus}),
                        "memory_nodes": None if memory is None else sorted(set(memory)),
                        "cores": len({int(cpu_core[cpu_index[c]]) for c in cpus}),
                        "threads": nthreads})
    return Layout(placement=placement, ptr=np.array(ptr, np.int64),
                  cpus=np.array(flat, np.int64), threads=np.array(threads),
                  mptr=np.array(mptr, np.int64), mnodes=np.array(mflat, np.int64),
                  cpu_core=cpu_core, core_node=core_node, node_size=node_size,
                  n_cores=len(core_node), partitions=tuple(records),
                  oversubscribed=(oversubscription > 1.0 if oversubscribed is None
                                  else bool(oversubscribed)),
                  oversubscription=oversubscription,
                  warnings=warnings, cores_per_instance=cores_per_instance)


def plan_layout(topo: Topology, placement: str, n: int, smt: bool = False,
                cores_per_instance: int | None = None, oversubscribe: bool = False) -> Layout:
    """N instances laid out as ``scaler scaling`` would, by the placement's own planner:
    unpinned instances get every usable CPU, the others their partitions, each with its
    planned thread count and memory nodes. Fixed-size instances that need more cores than
    the machine has are refused unless ``oversubscribe`` (``check_oversubscription``)."""
    from scaler import placements
    from scaler.groupcpus import plan_group

    planned = plan_group(placements.get(placement), topo, n, smt=smt,
                         cores_per_instance=cores_per_instance, oversubscribe=oversubscribe)
    usable = list(topo.usable_cpus)
    parts = [(list(i.cpus) if i.cpus is not None else usable, i.threads,
              list(i.nodes) if i.cpus is not None and i.nodes else None)
             for i in planned.instances]
    return build_layout(topo, placement, parts,
                        float(planned.layout.get("oversubscription", 1.0)), planned.warnings,
                        planned.layout.get("cores_per_instance"),
                        planned.layout.get("oversubscribed"))


def inherited_memory_nodes(policy: str | None) -> list[int] | None:
    """The nodes of a memory policy the worker inherited (``numactl --membind=1 scaler ...``
    reads back as ``bind:1``; ``interleave:0-1`` spreads pages over those nodes); None for
    the default policy or one that does not name nodes."""
    from affinity import parse_cpulist
    from affinity.errors import CpuListError

    mode, _, nodes = (policy or "").partition(":")
    if mode not in ("bind", "interleave", "weighted_interleave") or not nodes:
        return None
    try:
        return list(parse_cpulist(nodes))
    except CpuListError:
        return None


def recorded_layout(topo: Topology, group: dict[str, Any]) -> Layout:
    """The layout a measured group ran with, in the host's CPU numbers: the planned partition
    (a VM's worker records its binding in the guest's numbers), else the effective binding,
    else every usable CPU for shared instances. Memory: the partition's nodes when the
    worker bound them, the nodes of a policy it inherited when it bound none (a run under
    ``numactl --membind``), else none (unbound)."""
    parts = []
    usable = list(topo.usable_cpus)
    for inst in group["per_instance"]:
        binding = inst.get("binding") or {}
        partition = inst.get("partition") or {}
        cpus = partition.get("cpus") or binding.get("cpus") or usable
        if "memory_nodes" in partition:  # a simulated group: what its plan bound
            memory = partition["memory_nodes"]
        elif binding.get("memory_bound") is False:
            memory = inherited_memory_nodes(binding.get("memory_policy"))
        else:
            memory = partition.get("nodes") or (binding.get("nodes") if binding.get(
                "memory_bound") else None)
        parts.append((list(cpus), int(inst.get("threads") or len(cpus)),
                      list(memory) if memory else None))
    return build_layout(topo, group["placement"], parts,
                        float(group.get("oversubscription") or 1.0),
                        cores_per_instance=group.get("cores_per_instance"),
                        oversubscribed=group.get("oversubscribed"))
