"""The compiled discrete-event kernel: N instances sharing CPUs, cores and NUMA nodes.

Each instance serves one query at a time. A query carries *work* (milliseconds it would take
alone with one dedicated core, drawn from the measured service-time shape) and is served at a
*rate* that depends on who else is busy (:func:`features` and :func:`slowdown`): the share of
CPU time its threads get, the core capacity left by busy SMT siblings, the cost of being
time-sliced and of synchronising threads that do not all run, and memory-bandwidth and cache
contention from other instances on its nodes. Rates are recomputed whenever an instance goes
idle or busy (open loop); in a closed loop (the scaling scenario, every instance always busy)
they are computed once, which is what makes millions of queries per second possible.

Everything is compiled with ``cache=True`` so only the first call on a machine pays the
compile; nothing here is imported by the CLI at start.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# indices into the parameter vector passed to the kernel
P_SERIAL, P_BETA, P_SLICE, P_SYNC, P_SMT = 0, 1, 2, 3, 4


@njit(cache=True)
def features(ptr, cpus, threads, active, cpu_core, core_node, node_size, smt_gain, n_cores,
             out_e, out_waiting, out_mem):
    """For each active instance: ``out_e`` its cores' worth of compute, ``out_waiting`` the
    share of time its threads wait for their CPU (1 − 1/threads on it, averaged over its
    CPUs, 0 without time slicing), ``out_mem`` the busy fraction of the rest of its
    nodes (cores used by other instances over cores not exclusively its own). A CPU's time
    is shared fairly among the threads on it."""
    n = ptr.shape[0] - 1
    n_cpus = cpu_core.shape[0]
    n_nodes = node_size.shape[0]
    load = np.zeros(n_cpus)
    users = np.zeros(n_cores, np.int64)  # distinct active instances touching each core
    stamp = np.full(n_cores, -1, np.int64)
    for i in range(n):
        if not active[i]:
            continue
        width = ptr[i + 1] - ptr[i]
        per = threads[i] / width
        for k in range(ptr[i], ptr[i + 1]):
            c = cpus[k]
            load[c] += per
            core = cpu_core[c]
            if stamp[core] != i:
                stamp[core] = i
                users[core] += 1
    busy_cpus = np.zeros(n_cores, np.int64)
    for c in range(n_cpus):
        if load[c] > 0.0:
            busy_cpus[cpu_core[c]] += 1
    busy_node = np.zeros(n_nodes)
    for core in range(n_cores):
        if users[core] > 0:
            busy_node[core_node[core]] += 1.0
    mine = np.zeros(n_nodes)  # cores only this instance uses, per node
    stamp[:] = -1
    for i in range(n):
        if not active[i]:
            out_e[i] = 0.0
            out_waiting[i] = 0.0
            out_mem[i] = 0.0
            continue
        width = ptr[i + 1] - ptr[i]
        per = threads[i] / width
        e = 0.0
        waiting = 0.0
        mine[:] = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            c = cpus[k]
            core = cpu_core[c]
            b = busy_cpus[core]
            cap = (1.0 + smt_gain * (b - 1)) / b
            share = 1.0 if load[c] <= 1.0 else 1.0 / load[c]
            e += per * share * cap
            if load[c] > 1.0:
                waiting += 1.0 - 1.0 / load[c]
            if users[core] == 1 and stamp[core] != i:
                stamp[core] = i
                mine[core_node[core]] += 1.0
        mem = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            m = core_node[cpu_core[cpus[k]]]
            rest = node_size[m] - mine[m]
            if rest > 0.0:
                mem += min(1.0, (busy_node[m] - mine[m]) / rest)
        out_e[i] = e
        out_waiting[i] = waiting / width
        out_mem[i] = mem / width


@njit(cache=True)
def slowdown(e, waiting, mem, multi_threaded, params):
    """How many times longer a query takes than alone on one dedicated core.

    Amdahl over the cores' worth ``e`` (the serial part runs at most at one core's speed),
    times memory contention ``1 + β·mem``, times the cost of sharing CPUs
    ``1 + (slice + sync·[threads > 1])·waiting``: the costs of time slicing grow with the
    share of time a thread waits for its CPU and level off as it nears 1, which is why
    throughput stays flat, rather than falling without end, as instances are added.
    """
    s = params[P_SERIAL]
    amdahl = s / min(1.0, e) + (1.0 - s) / e
    share = 1.0 + (params[P_SLICE] + (params[P_SYNC] if multi_threaded else 0.0)) * waiting
    return amdahl * (1.0 + params[P_BETA] * mem) * share


@njit(cache=True)
def rates(ptr, cpus, threads, active, cpu_core, core_node, node_size, n_cores, params,
          vm_slow, out_factor):
    """The slowdown of every active instance (times its vm factor) into ``out_factor``."""
    n = ptr.shape[0] - 1
    e = np.zeros(n)
    waiting = np.zeros(n)
    mem = np.zeros(n)
    features(ptr, cpus, threads, active, cpu_core, core_node, node_size, params[P_SMT],
             n_cores, e, waiting, mem)
    for i in range(n):
        if active[i]:
            out_factor[i] = slowdown(e[i], waiting[i], mem[i], threads[i] > 1.0,
                                     params) * vm_slow[i]


@njit(cache=True)
def _draw(shape):
    pos = np.random.random() * (shape.shape[0] - 1)
    k = int(pos)
    return shape[k] + (pos - k) * (shape[k + 1] - shape[k])


@njit(cache=True)
def run_closed(ptr, cpus, threads, cpu_core, core_node, node_size, n_cores, params, vm_slow,
               work_ms, extra_ms, shape, n_warm, n_queries, seed):
    """Every instance always busy (batch-1 scaling). Returns per-instance completions in the
    window, the window [t0, t1] (ms), every latency in the window (ms), and the
    time-integral of queries in the system over the window."""
    np.random.seed(seed)
    n = ptr.shape[0] - 1
    active = np.ones(n, np.bool_)
    factor = np.zeros(n)
    rates(ptr, cpus, threads, active, cpu_core, core_node, node_size, n_cores, params,
          vm_slow, factor)
    start = np.zeros(n)
    finish = np.zeros(n)
    for i in range(n):
        finish[i] = (work_ms[i] * _draw(shape) + extra_ms[i]) * factor[i]
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
        finish[j] = t + (work_ms[j] * _draw(shape) + extra_ms[j]) * factor[j]
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
def _rerate(t, active, remaining, finish, factor, ptr, cpus, threads, cpu_core, core_node,
            node_size, n_cores, params, vm_slow):
    """After an instance went busy or idle: bank the work done at the old rates, compute the
    new slowdowns, and move every finish time to the new rate."""
    n = active.shape[0]
    for i in range(n):
        if active[i] and finish[i] < np.inf:
            remaining[i] = (finish[i] - t) / factor[i]
    rates(ptr, cpus, threads, active, cpu_core, core_node, node_size, n_cores, params,
          vm_slow, factor)
    for i in range(n):
        if active[i]:
            finish[i] = t + remaining[i] * factor[i]


@njit(cache=True)
def run_open(ptr, cpus, threads, cpu_core, core_node, node_size, n_cores, params, vm_slow,
             work_ms, extra_ms, shape, interval_ms, phase_ms, warm_ms, end_ms, seed):
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
                remaining[j] = work_ms[j] * _draw(shape) + extra_ms[j]
                changed = True
        else:
            completed[j] += 1
            in_system -= 1
            if t >= warm_ms and counted < cap:
                lat[counted] = t - (phase_ms[j] + (completed[j] - 1) * interval_ms)
                counted += 1
                done[j] += 1
            if arrived[j] > completed[j]:
                remaining[j] = work_ms[j] * _draw(shape) + extra_ms[j]
                finish[j] = t + remaining[j] * factor[j]
            else:
                active[j] = False
                finish[j] = np.inf
                changed = True
        if changed:
            _rerate(t, active, remaining, finish, factor, ptr, cpus, threads, cpu_core,
                    core_node, node_size, n_cores, params, vm_slow)
    return done, lat[:counted], area, arrivals_in, in_system
