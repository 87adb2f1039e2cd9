"""The compiled discrete-event kernel: N instances sharing CPUs, cores and NUMA nodes.

Each instance serves one query at a time. A query carries *work* (milliseconds it would take
alone with one dedicated core, drawn from the measured service-time shape) and is served at a
*rate* that depends on who else is busy (``scaler.simulate.rates``: ``features``, ``amdahl``,
``slowdown``):
the share of CPU time its threads get in their parallel steps and its one thread in its
serial part, the core capacity left by busy SMT siblings, the cost of being time-sliced and
of synchronising threads that do not all run (growing with the thread count), memory
bandwidth and cache contention from other instances on its nodes, and remote memory
accesses under cross-node load. How many threads of each instance are runnable depends on
how long it spends in its serial part and whether its waiting threads spin, which depends on
the shares: ``rates.rates`` iterates that to a fixed point. Rates are recomputed whenever an
instance goes idle or busy (open loop); in a closed loop (the scaling scenario, every
instance always busy) they are computed once, which is what makes millions of queries per
second possible. The closed loop draws service times stratified (``draw_stratified``), the
queueing kernels independently (``draw``): ``run_closed`` says why.

Everything is compiled with ``cache=True`` so only the first call on a machine pays the
compile; nothing here is imported by the CLI at start.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scaler.simulate.rates import rates

STRATA = 1000  # strata of the closed loop's draws: any aligned run of STRATA draws covers them


@njit(cache=True)
def at(shape, p):
    """The service time over its mean at probability ``p`` in [0, 1): the shape table is
    the quantile function at evenly spaced probabilities, interpolated linearly."""
    pos = p * (shape.shape[0] - 1)
    k = min(int(pos), shape.shape[0] - 2)
    return shape[k] + (pos - k) * (shape[k + 1] - shape[k])


@njit(cache=True)
def draw(shape):
    """An independent draw from the shape (a uniform probability): what the queueing
    kernels (``run_open``, ``serve_kernel``) take."""
    return at(shape, np.random.random())


@njit(cache=True)
def strata(n):
    """Each of ``n`` streams' state for ``draw_stratified``: its strata in the order its
    block will use them (any permutation will do: the block shuffles as it goes) and how
    many of its block it has used."""
    order = np.empty((n, STRATA), np.int32)
    for i in range(n):
        for k in range(STRATA):
            order[i, k] = k
    return order, np.zeros(n, np.int64)


@njit(cache=True)
def draw_stratified(shape, order, used, i):
    """A stratified draw of stream ``i``: its draws come in blocks of ``STRATA``; a block
    takes every stratum [k/STRATA, (k+1)/STRATA) of probability once, in an order shuffled
    as it goes (Fisher-Yates, one swap per draw), and a uniform probability inside it.

    Each draw's probability is uniform on [0, 1) (its stratum is uniform over the strata by
    the symmetry of the shuffle, its place in the stratum uniform), so each draw has the
    shape's distribution exactly; what changes is the joint: draws of one block never share
    a stratum, so the mean of a run of draws strays far less from the shape's mean (a
    heavy tail's rare values come at their rate, not in lumps). Blocks are independent."""
    k = used[i]
    r = min(k + int(np.random.random() * (STRATA - k)), STRATA - 1)
    s = order[i, r]
    order[i, r] = order[i, k]
    order[i, k] = s
    used[i] = k + 1 if k + 1 < STRATA else 0
    return at(shape, (s + np.random.random()) / STRATA)


@njit(cache=True)
def run_closed(ptr, cpus, threads, mptr, mnodes, cpu_core, core_node, node_size, n_cores,
               params, vm_slow, work_ms, extra_ms, shape, n_warm, n_queries, seed):
    """Every instance always busy (batch-1 scaling). Returns per-instance completions in the
    window, the window [t0, t1] (ms), every latency in the window (ms), and the
    time-integral of queries in the system over the window.

    Each instance's service times are stratified draws (``draw_stratified``, one stream per
    instance): every draw has the shape's distribution, and an instance's queries in the
    window average to the shape's mean far more closely than independent draws do (with a
    heavy tail, 20,000 independent draws can stray by several percent). Nothing here
    queues: a latency is one service time, each with the shape's distribution, so every
    latency's expected value and every percentile's share of the latencies stay as they
    were; the dependence within a block changes only how far one window strays from them.
    The queueing kernels (``run_open``, ``serve_kernel``) keep independent draws: there a
    block's evened-out work would shorten the queues (an M/M/1 queue at 90% load waits
    about 7% less on average with blocks of 1,000 strata, about 2% less at 80%)."""
    np.random.seed(seed)
    n = ptr.shape[0] - 1
    order, used = strata(n)
    active = np.ones(n, np.bool_)
    factor = np.zeros(n)
    rates(ptr, cpus, threads, mptr, mnodes, active, cpu_core, core_node, node_size, n_cores,
          params, vm_slow, factor)
    start = np.zeros(n)
    finish = np.zeros(n)
    for i in range(n):
        finish[i] = (work_ms[i] * draw_stratified(shape, order, used, i)
                     + extra_ms[i]) * factor[i]
    tree = _tree(finish)
    done = np.zeros(n, np.int64)
    lat = np.empty(n_queries)
    t0 = 0.0
    t = 0.0
    counted = 0
    total = n_warm + n_queries
    for q in range(total):
        j = tree[1]
        t = finish[j]
        if q >= n_warm:
            lat[counted] = t - start[j]
            counted += 1
            done[j] += 1
        elif q == n_warm - 1:
            t0 = t
        start[j] = t
        finish[j] = t + (work_ms[j] * draw_stratified(shape, order, used, j)
                            + extra_ms[j]) * factor[j]
        _tree_update(tree, finish, j)
    return done, t0, t, lat, n * (t - t0)


@njit(cache=True)
def _tree(times):
    """A tournament tree over ``times``: node k holds the index of the earliest time among
    its leaves (node 1 is the root), so the next event is found in O(1) and a changed time
    re-ranked in O(log n). Leaves past the last instance repeat it: a subtree of such
    padding alone always holds the last instance, so it never needs updating."""
    size = 1
    while size < times.shape[0]:
        size *= 2
    tree = np.zeros(2 * size, np.int64)
    for k in range(size):
        tree[size + k] = min(k, times.shape[0] - 1)
    for k in range(size - 1, 0, -1):
        a, b = tree[2 * k], tree[2 * k + 1]
        tree[k] = a if times[a] <= times[b] else b
    return tree


@njit(cache=True)
def _tree_update(tree, times, i):
    k = (tree.shape[0] // 2 + i) // 2
    while k >= 1:
        a, b = tree[2 * k], tree[2 * k + 1]
        tree[k] = a if times[a] <= times[b] else b
        k //= 2


@njit(cache=True)
def _next_event(finish, next_arrival):
    """The instance with the earliest event, its time, and whether it is an arrival."""
    j = -1
    best = np.inf
    is_arrival = False
    for i in range(finish.shape[0]):
        if finish[i] < best:
            best = finish[i]
            j = i
            is_arrival = False
        if next_arrival[i] < best:
            best = next_arrival[i]
            j = i
            is_arrival = True
    return j, best, is_arrival


@njit(cache=True)
def rerate(t, active, remaining, finish, factor, ptr, cpus, threads, mptr, mnodes, cpu_core,
           core_node, node_size, n_cores, params, vm_slow):
    """After an instance went busy or idle: bank the work done at the old rates, compute the
    new slowdowns, and move every finish time to the new rate."""
    n = active.shape[0]
    for i in range(n):
        if active[i] and finish[i] < np.inf:
            remaining[i] = (finish[i] - t) / factor[i]
    rates(ptr, cpus, threads, mptr, mnodes, active, cpu_core, core_node, node_size, n_cores,
          params, vm_slow, factor)
    for i in range(n):
        if active[i]:
            finish[i] = t + remaining[i] * factor[i]


@njit(cache=True)
def run_open(ptr, cpus, threads, mptr, mnodes, cpu_core, core_node, node_size, n_cores, params,
             vm_slow, work_ms, extra_ms, shape, interval_ms, phase_ms, warm_ms, end_ms, seed):
    """Queries arrive at a fixed interval per instance (after its phase) and queue FIFO.

    Rates are recomputed whenever an instance goes busy or idle. Returns per-instance
    completions in the window [warm_ms, end_ms], latencies (arrival to completion, ms) of
    the queries completed in it, the time-integral of queries in the system over the
    window, the arrivals in it (for Little's law) and the queries left in the system at
    the end (a growing backlog means the instances cannot keep up).
    """
    np.random.seed(seed)
    n = ptr.shape[0] - 1
    active = np.zeros(n, np.bool_)
    factor = np.ones(n)
    remaining = np.zeros(n)  # work left of the query in service (ms at slowdown 1)
    finish = np.full(n, np.inf)
    next_arrival = phase_ms.copy()
    arrived = np.zeros(n, np.int64)
    completed = np.zeros(n, np.int64)
    done = np.zeros(n, np.int64)
    cap = int((end_ms - warm_ms) / interval_ms + 2) * n
    lat = np.empty(cap)
    counted = 0
    in_system = 0
    area = 0.0
    arrivals_in = 0
    t = 0.0
    while True:
        j, best, is_arrival = _next_event(finish, next_arrival)
        if best > end_ms:
            if t < end_ms:
                area += in_system * (end_ms - max(t, warm_ms))
            break
        if best > warm_ms:
            area += in_system * (best - max(t, warm_ms))
        t = best
        changed = False
        if is_arrival:
            arrived[j] += 1
            in_system += 1
            if t >= warm_ms:
                arrivals_in += 1
            next_arrival[j] = phase_ms[j] + arrived[j] * interval_ms
            if not active[j]:
                active[j] = True
                remaining[j] = work_ms[j] * draw(shape) + extra_ms[j]
                changed = True
        else:
            completed[j] += 1
            in_system -= 1
            if t >= warm_ms and counted < cap:
                lat[counted] = t - (phase_ms[j] + (completed[j] - 1) * interval_ms)
                counted += 1
                done[j] += 1
            if arrived[j] > completed[j]:
                remaining[j] = work_ms[j] * draw(shape) + extra_ms[j]
                finish[j] = t + remaining[j] * factor[j]
            else:
                active[j] = False
                finish[j] = np.inf
                changed = True
        if changed:
            rerate(t, active, remaining, finish, factor, ptr, cpus, threads, mptr, mnodes,
                   cpu_core, core_node, node_size, n_cores, params, vm_slow)
    return done, lat[:counted], area, arrivals_in, in_system
