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
fits in a node is one contiguous run of them, so it is as local as the machine allows.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from affinity.cpulist import format_cpulist
from affinity.errors import PlanError
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
        groups = _numa_layout(caps, instances, cores_per_instance)
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


# --- NUMA layout -------------------------------------------------------------------------
# Cores are addressed by their position in the node-ordered list. A layout is found in two
# steps: (1) choose how many partitions lie wholly inside each node, as many as possible;
# (2) lay the rest (the straddlers) over what the nodes have left, in node order, touching
# as few nodes as possible.


def _numa_layout(caps: list[int], n: int, size: int | None) -> list[list[int]]:
    """Core positions of each of ``n`` partitions over nodes of ``caps`` cores."""
    if size is None:
        small, bigs = divmod(sum(caps), n)
        candidates = _inside_balanced(caps, n, small, bigs)
    else:
        small, bigs = size, 0
        candidates = [_inside_fixed(caps, n, size)]
    best: list[list[int]] = []
    best_key = (0, 0)
    for inside in candidates:
        layout, cost = _complete(caps, inside, n, small, bigs)
        key = (cost, sum(len(sizes) ** 2 for sizes in inside))  # tidy, then evenly spread
        if not best or key < best_key:
            best, best_key = layout, key
    return best


def _inside_balanced(caps: list[int], n: int, small: int, bigs: int) -> list[list[list[int]]]:
    """The in-node partition sizes per node that maximise how many partitions lie inside
    one node, for ``bigs`` partitions of ``small + 1`` cores and the rest of ``small``.

    Dynamic programme over nodes: for each count of in-node big partitions, the most small
    ones that are needed, and among those the choice spreading partitions most evenly over
    the nodes (least sum of squared counts). Every count of bigs reaching the maximum is
    returned, so that the straddlers' step can pick the tidiest.
    """
    smalls = n - bigs
    # bigs inside -> (smalls inside, capped at `smalls`; minus the spread; (x, y) per node)
    reach: dict[int, tuple[int, int, list[tuple[int, int]]]] = {0: (0, 0, [])}
    for cap in caps:
        nxt: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}
        for used_bigs, (used_smalls, spread, picks) in reach.items():
            for y in range(min(cap // (small + 1), bigs - used_bigs) + 1):
                x = (cap - y * (small + 1)) // small
                value = (min(used_smalls + x, smalls), spread - (x + y) ** 2)
                key = used_bigs + y
                if key not in nxt or value > nxt[key][:2]:
                    nxt[key] = (*value, [*picks, (x, y)])
        reach = nxt
    score = {y: x + y for y, (x, _, _) in reach.items()}
    top = max(score.values())
    result = []
    for used_bigs in sorted(reach):
        if score[used_bigs] == top:
            picks = _drop_extra_smalls(reach[used_bigs][2], smalls)
            result.append([[small + 1] * y + [small] * x for x, y in picks])
    return result


def _drop_extra_smalls(picks: list[tuple[int, int]], smalls: int) -> list[tuple[int, int]]:
    """Fewer in-node small partitions when more fit than there are: take them from the
    nodes holding the most partitions (the later node on a tie)."""
    picks = list(picks)
    extra = sum(x for x, _ in picks) - smalls
    while extra > 0:
        j = max((j for j, (x, _) in enumerate(picks) if x > 0), key=lambda j: (sum(picks[j]), j))
        picks[j] = (picks[j][0] - 1, picks[j][1])
        extra -= 1
    return picks


def _inside_fixed(caps: list[int], n: int, size: int) -> list[list[int]]:
    """In-node partitions of ``size`` cores: every slot when there are too few, else spread
    over the nodes (fewest partitions first, then most room, then lowest node)."""
    slots = [cap // size for cap in caps]
    counts = [0] * len(caps)
    for _ in range(min(n, sum(slots))):
        free = [j for j in range(len(caps)) if counts[j] < slots[j]]
        j = min(free, key=lambda j: (counts[j], -(caps[j] - counts[j] * size), j))
        counts[j] += 1
    return [[size] * count for count in counts]


def _complete(
    caps: list[int], inside: list[list[int]], n: int, small: int, bigs: int
) -> tuple[list[list[int]], int]:
    """Place the partitions not inside a node over the nodes' leftovers and build the
    layout; returns the core positions per partition and how many nodes straddlers touch."""
    fragments = [cap - sum(sizes) for cap, sizes in zip(caps, inside, strict=True)]
    placed_bigs = sum(s == small + 1 for sizes in inside for s in sizes)
    placed = sum(len(sizes) for sizes in inside)
    rest_bigs = bigs - placed_bigs
    rest_smalls = n - placed - rest_bigs
    spans, cost = _straddle(fragments, small, rest_smalls, rest_bigs)
    return _assemble(caps, inside, fragments, spans), cost


def _straddle(
    fragments: list[int], small: int, smalls: int, bigs: int
) -> tuple[list[tuple[int, int]], int]:
    """Lay ``smalls`` partitions of ``small`` cores and ``bigs`` of ``small + 1`` along the
    concatenated leftovers, leaving any surplus idle, so that the partitions touch the
    fewest nodes in total. Returns their [start, end) spans in leftover space and that
    total.

    A dynamic programme over (partitions placed, bigs among them, cores skipped); the
    leftovers are short, so the state space is small.
    """
    ends = []
    total = 0
    for frag in fragments:
        if frag:
            total += frag
            ends.append(total)
    count = smalls + bigs
    slack = total - smalls * small - bigs * (small + 1)

    def touched(start: int, length: int) -> int:
        return bisect.bisect_right(ends, start + length - 1) - bisect.bisect_right(ends, start) + 1

    inf = float("inf")
    cost: dict[tuple[int, int, int], float] = {(0, 0, 0): 0}
    back: dict[tuple[int, int, int], tuple[tuple[int, int, int], int]] = {}
    for i in range(count + 1):
        for b in range(min(i, bigs) + 1):
            for g in range(slack + 1):
                here = cost.get((i, b, g), inf)
                if here == inf:
                    continue
                pos = i * small + b + g
                moves = [((i, b, g + 1), 0, 0)] if g < slack else []
                if i - b < smalls:
                    moves.append(((i + 1, b, g), small, touched(pos, small)))
                if b < bigs:
                    moves.append(((i + 1, b + 1, g), small + 1, touched(pos, small + 1)))
                for state, length, step in moves:
                    if here + step < cost.get(state, inf):
                        cost[state] = here + step
                        back[state] = ((i, b, g), length)
    state = (count, bigs, slack)
    spans = []
    while state != (0, 0, 0):
        prev, length = back[state]
        if length:
            start = prev[0] * small + prev[1] + prev[2]
            spans.append((start, start + length))
        state = prev
    return spans[::-1], int(cost[(count, bigs, slack)])


def _assemble(
    caps: list[int], inside: list[list[int]], fragments: list[int], spans: list[tuple[int, int]]
) -> list[list[int]]:
    """Turn per-node in-node sizes and straddler spans into core positions, partitions in
    the order they start.

    In each node the piece of a straddler arriving from the previous node comes first, then
    the in-node partitions, then the rest of the leftover (idle cores, then the piece of a
    straddler leaving for the next node), so straddlers sit on the node boundaries.
    """
    straddlers: list[list[int]] = [[] for _ in spans]
    result: list[list[int]] = []
    base = frag_start = 0
    for cap, sizes, frag in zip(caps, inside, fragments, strict=True):
        frag_end = frag_start + frag
        # this node's leftover in order: (the straddler owning it or None if idle, length)
        blocks: list[tuple[list[int] | None, int]] = []
        cursor = frag_start
        arriving = 0
        for k, (start, end) in enumerate(spans):
            lo, hi = max(start, frag_start), min(end, frag_end)
            if lo < hi:
                if lo > cursor:
                    blocks.append((None, lo - cursor))
                blocks.append((straddlers[k], hi - lo))
                arriving += start < frag_start
                cursor = hi
        if frag_end > cursor:
            blocks.append((None, frag_end - cursor))
        inner: list[list[int]] = [[] for _ in sizes]
        result.extend(inner)
        blocks = blocks[:arriving] + list(zip(inner, sizes, strict=True)) + blocks[arriving:]
        pos = base
        for owner, length in blocks:
            if owner is not None:
                owner.extend(range(pos, pos + length))
            pos += length
        base += cap
        frag_start = frag_end
    return sorted(result + straddlers, key=lambda group: group[0])


# --- warnings ----------------------------------------------------------------------------


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
