"""The NUMA layout of a plan: which core positions each partition takes, over nodes of given
core counts (``affinity.plan`` turns positions into cores, CPUs and nodes).

Cores are addressed by their position in the node-ordered list. A layout is found in two
steps: (1) choose how many partitions lie wholly inside each node, as many as possible;
(2) lay the rest (the straddlers) over what the nodes have left, in node order, touching
as few nodes as possible.
"""

from __future__ import annotations

import bisect


def numa_layout(caps: list[int], n: int, size: int | None) -> list[list[int]]:
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
