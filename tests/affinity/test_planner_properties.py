"""Property tests of every planner rule on generated topologies.

Topologies are built in memory: 1-4 CPU nodes (ids up to two digits, optionally a CPU-less
memory node), 1-7 cores each (all nodes equal half the time), one, two or mixed threads per
core, siblings numbered split (n, n+cores), adjacent (0/1) or shuffled, sparse core ids,
and some CPUs not usable (offline or outside the affinity).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from affinity import Core, Cpu, Node, PlanError, Topology, plan

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def topologies(draw) -> Topology:
    count = draw(st.integers(1, 4))
    caps = draw(st.lists(st.integers(1, 7), min_size=count, max_size=count))
    if draw(st.booleans()):
        caps = [caps[0]] * count
    node_ids = sorted(draw(st.sets(st.integers(0, 15), min_size=count, max_size=count)))
    mode = draw(st.sampled_from(["one", "two", "mixed"]))
    slots = []  # (node id, package, core id, threads)
    for index, (node, cap) in enumerate(zip(node_ids, caps, strict=True)):
        package = index // 2
        base = len([s for s in slots if s[1] == package])
        for k in range(cap):
            threads = {"one": 1, "two": 2}.get(mode) or draw(st.sampled_from([1, 2]))
            core_id = (base + k) * draw(st.sampled_from([1, 1, 4]))  # sometimes sparse
            slots.append((node, package, core_id, threads))
    slots = list({(s[1], s[2]): s for s in slots}.values())  # keep core keys unique
    numbering = draw(st.sampled_from(["split", "adjacent", "shuffled"]))
    ids: list[list[int]] = [[] for _ in slots]
    counter = itertools.count()
    if numbering == "adjacent":
        for i, slot in enumerate(slots):
            ids[i] = [next(counter) for _ in range(slot[3])]
    else:
        for t in range(2):
            for i, slot in enumerate(slots):
                if slot[3] > t:
                    ids[i].append(next(counter))
    total = next(counter)
    if numbering == "shuffled":
        perm = draw(st.permutations(range(total)))
        ids = [[perm[c] for c in cpus] for cpus in ids]
    unusable = draw(st.sets(st.integers(0, total - 1), max_size=total // 3))
    usable = tuple(sorted(set(range(total)) - unusable)) or (ids[0][0],)
    cpus, cores = [], []
    for (node, package, core_id, _), cpu_ids in zip(slots, ids, strict=True):
        cores.append(Core(package, 0, core_id, node, tuple(sorted(cpu_ids))))
        cpus += [Cpu(c, True, package, 0, core_id, node) for c in cpu_ids]
    nodes = [
        Node(n, tuple(sorted(c.id for c in cpus if c.node == n)), 2**30, True, ()) for n in node_ids
    ]
    if draw(st.booleans()):
        nodes.append(Node(node_ids[-1] + 1, (), 2**34, False, ()))
    return Topology(
        cpus=tuple(sorted(cpus, key=lambda c: c.id)),
        cores=tuple(sorted(cores, key=lambda c: c.key)),
        nodes=tuple(nodes),
        packages=tuple(sorted({c.package for c in cpus})),
        usable_cpus=usable,
        isa=(),
        sysfs_root="generated",
    )


def node_order(topo: Topology) -> dict[int, list[Core]]:
    by_node: dict[int, list[Core]] = {}
    for core in sorted(topo.usable_cores, key=lambda c: (c.node, c.key)):
        by_node.setdefault(core.node, []).append(core)
    return by_node


def most_inside(caps: list[int], n: int, size: int | None) -> int:
    """Brute force: the most partitions that can lie wholly inside one node each."""
    if size is not None:
        return min(n, sum(cap // size for cap in caps))
    small, bigs = divmod(sum(caps), n)
    # per node: y big partitions, then as many small ones as fit
    options = [
        [((cap - y * (small + 1)) // small, y) for y in range(cap // (small + 1) + 1)]
        for cap in caps
    ]
    best = 0
    for combo in itertools.product(*options):
        y = sum(b for _, b in combo)
        if y <= bigs:
            best = max(best, min(sum(x for x, _ in combo), n - bigs) + y)
    return best


@st.composite
def requests(draw):
    topo = draw(topologies())
    cores = len(topo.usable_cores)
    n = draw(st.integers(1, cores + 3))
    size = draw(st.one_of(st.none(), st.integers(1, cores + 1)))
    return topo, n, size, draw(st.booleans()), draw(st.booleans())


@SETTINGS
@given(requests())
def test_planner_rules(request):
    topo, n, size, smt, oversubscribe = request
    cores = topo.usable_cores
    total = len(cores)
    demand = n * (size or 1)
    if (size or 1) > total or (demand > total and not oversubscribe):
        try:
            plan(topo, n, size, smt=smt, oversubscribe=oversubscribe)
        except PlanError as exc:
            assert "\n" not in str(exc)
            return
        raise AssertionError("expected a PlanError")
    result = plan(topo, n, size, smt=smt, oversubscribe=oversubscribe)
    assert result == plan(topo, n, size, smt=smt, oversubscribe=oversubscribe)  # deterministic
    parts = result.partitions
    assert [p.index for p in parts] == list(range(n))
    core_of = {cpu: core for core in cores for cpu in core.cpus}
    has_cpu = {node.id for node in topo.nodes if node.has_cpu}
    usage: Counter = Counter()
    for p in parts:
        assert set(p.cpus) <= set(topo.usable_cpus)  # only usable CPUs
        mine = {core_of[cpu].key: core_of[cpu] for cpu in p.cpus}
        assert p.cores == len(mine)
        if smt:  # all usable siblings of each core, together
            assert sorted(p.cpus) == sorted(c for core in mine.values() for c in core.cpus)
        else:  # one hardware thread per core: its first usable sibling
            assert sorted(p.cpus) == sorted(core.cpus[0] for core in mine.values())
        # memory nodes are exactly the nodes of its CPUs, never CPU-less
        assert p.nodes == tuple(sorted({core.node for core in mine.values()}))
        assert set(p.nodes) <= has_cpu
        usage.update(mine.keys())
        if size is not None:
            assert p.cores == size
    sizes = [p.cores for p in parts]
    if size is None and not result.oversubscribed:
        assert max(sizes) - min(sizes) <= 1  # balanced
        assert sum(sizes) == total  # no idle core
    assert result.oversubscribed == (demand > total)
    assert result.oversubscription == max(usage.values())
    assert result.idle_cores == total - len(usage)
    if demand > total:
        assert result.oversubscription == math.ceil(demand / total)
        assert any("oversubscribed" in w for w in result.warnings)
        return
    assert max(usage.values()) == 1  # no core shared or split between partitions
    caps = [len(c) for c in node_order(topo).values()]
    assert len(result.straddling) == n - most_inside(caps, n, size)  # fewest straddlers


@SETTINGS
@given(requests())
def test_partitions_inside_a_node_are_contiguous_runs(request):
    topo, n, size, smt, _ = request
    if n * (size or 1) > len(topo.usable_cores):
        return
    by_node = node_order(topo)
    result = plan(topo, n, size, smt=smt)
    for p in result.partitions:
        if len(p.nodes) == 1:
            order = [core.cpus[0] for core in by_node[p.nodes[0]]]
            firsts = sorted(order.index(cpu) for cpu in p.cpus if cpu in order)
            assert firsts == list(range(firsts[0], firsts[0] + p.cores))


@st.composite
def equal_nodes(draw):
    count = draw(st.integers(1, 6))
    cap = draw(st.integers(1, 6))
    return count, cap


def uniform(count: int, cap: int) -> Topology:
    cores = [Core(0, 0, i, i // cap, (i,)) for i in range(count * cap)]
    cpus = [Cpu(i, True, 0, 0, i, i // cap) for i in range(count * cap)]
    nodes = [Node(n, tuple(range(n * cap, (n + 1) * cap)), 1, True, ()) for n in range(count)]
    return Topology(
        tuple(cpus), tuple(cores), tuple(nodes), (0,), tuple(range(count * cap)), (), "uniform"
    )


@SETTINGS
@given(equal_nodes(), st.integers(1, 6))
def test_instances_dividing_equal_nodes_take_whole_nodes(shape, per):
    count, cap = shape
    divisors = [d for d in range(1, count + 1) if count % d == 0]
    n = divisors[per % len(divisors)]
    result = plan(uniform(count, cap), n)
    for p in result.partitions:
        assert len(p.nodes) == count // n
        assert sorted(p.cpus) == [
            c for node in p.nodes for c in range(node * cap, (node + 1) * cap)
        ]


@SETTINGS
@given(equal_nodes(), st.integers(1, 6))
def test_multiples_of_the_node_count_never_straddle(shape, times):
    count, cap = shape
    n = count * times
    if n > count * cap:
        return
    result = plan(uniform(count, cap), n)
    assert result.straddling == ()
    assert Counter(p.nodes[0] for p in result.partitions) == dict.fromkeys(range(count), times)


# --- the nodes straddlers touch, where they sit, and the order of partitions --------------


def fewest_nodes_touched(fragments: list[int], sizes: list[int]) -> int:
    """Brute force: the fewest nodes that partitions of ``sizes`` can touch in total when
    laid one after another along the nodes' leftover cores (``fragments``, in node order),
    any surplus core idle anywhere."""
    ends = list(itertools.accumulate(f for f in fragments if f))
    total = ends[-1] if ends else 0
    slack = total - sum(sizes)
    counts = Counter(sizes)

    def touched(start: int, length: int) -> int:
        return bisect.bisect_right(ends, start + length - 1) - bisect.bisect_right(ends, start) + 1

    @functools.cache
    def best(pos: int, left: tuple[tuple[int, int], ...], idle: int) -> float:
        if not left and idle == slack:
            return 0
        options = [best(pos + 1, left, idle + 1)] if idle < slack else []
        for i, (size, count) in enumerate(left):
            rest = left[:i] + ((size, count - 1),) * (count > 1) + left[i + 1:]
            options.append(touched(pos, size) + best(pos + size, rest, idle))
        return min(options, default=math.inf)

    return int(best(0, tuple(sorted(counts.items())), 0))


def positions(topo: Topology) -> dict[int, tuple[int, int]]:
    """CPU -> (node, position of its core within the node's usable cores)."""
    return {cpu: (node, k) for node, cores in node_order(topo).items()
            for k, core in enumerate(cores) for cpu in core.cpus}


@SETTINGS
@given(requests())
def test_straddlers_touch_the_fewest_nodes_their_leftovers_allow(request):
    topo, n, size, smt, _ = request
    if n * (size or 1) > len(topo.usable_cores):
        return
    result = plan(topo, n, size, smt=smt)
    by_node = node_order(topo)
    used = Counter(p.nodes[0] for p in result.partitions if len(p.nodes) == 1
                   for _ in range(p.cores))
    fragments = [len(cores) - used[node] for node, cores in by_node.items()]
    straddlers = [p for p in result.partitions if len(p.nodes) > 1]
    assert sum(len(p.nodes) for p in straddlers) == fewest_nodes_touched(
        fragments, [p.cores for p in straddlers])


@SETTINGS
@given(requests())
def test_straddlers_sit_on_node_boundaries_and_partitions_run_in_core_order(request):
    topo, n, size, smt, _ = request
    if n * (size or 1) > len(topo.usable_cores):
        return
    result = plan(topo, n, size, smt=smt)
    where = positions(topo)
    caps = {node: len(cores) for node, cores in node_order(topo).items()}
    firsts = []
    for p in result.partitions:
        mine = sorted({where[cpu] for cpu in p.cpus})
        firsts.append(mine[0])
        if len(p.nodes) == 1:
            continue
        for node in p.nodes:
            ks = [k for nd, k in mine if nd == node]
            if node == p.nodes[0]:  # leaves its first node from the node's last cores
                assert ks == list(range(caps[node] - len(ks), caps[node])), (p, node)
            else:  # arrives in every later node on the node's first cores
                assert ks == list(range(len(ks))), (p, node)
    assert firsts == sorted(firsts)  # partition indices follow the cores' order


@SETTINGS
@given(requests())
def test_fixed_size_partitions_spread_over_the_nodes(request):
    topo, n, size, smt, _ = request
    if size is None or n * size > len(topo.usable_cores):
        return
    result = plan(topo, n, size, smt=smt)
    caps = {node: len(cores) for node, cores in node_order(topo).items()}
    slots = {node: cap // size for node, cap in caps.items()}
    inside = Counter(p.nodes[0] for p in result.partitions if len(p.nodes) == 1)
    assert sum(inside.values()) == min(n, sum(slots.values()))
    for a in caps:  # a node with 2 more partitions than another that still has room: unfair
        for b in caps:
            assert inside[a] <= inside[b] + 1 or inside[b] == slots[b], (inside, slots)


@SETTINGS
@given(requests())
def test_oversubscribed_partitions_take_cores_round_robin(request):
    topo, n, size, smt, _ = request
    size = size or 1
    total = len(topo.usable_cores)
    if size > total or n * size <= total:
        return
    result = plan(topo, n, size, smt=smt, oversubscribe=True)
    order = [core for cores in node_order(topo).values() for core in cores]
    for i, p in enumerate(result.partitions):
        cores = [order[(i * size + t) % total] for t in range(size)]
        cpus = sorted(c for core in cores for c in (core.cpus if smt else core.cpus[:1]))
        assert p.cpus == tuple(cpus)
        assert p.cores == size and p.nodes == tuple(sorted({core.node for core in cores}))
