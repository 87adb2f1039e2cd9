"""The simulated server's event loop, compiled (numba): Poisson arrivals into one FIFO queue
served by N instances whose rates follow the layout's sharing (``des.rerate``). The rules it
mirrors and the settings it takes are in ``scaler.simulate.serve``."""

from __future__ import annotations

import numpy as np
from numba import njit

from scaler.simulate.des import draw, rerate


@njit(cache=True)
def run_serve(ptr, cpus, threads, mptr, mnodes, cpu_core, core_node, node_size, n_cores,
              params, vm_slow, work_ms, extra_ms, shape, schedule_ms, batch, max_batch,
              timeout_ms, bound_ms, allowed_over, drain_ms, seed):
    """Serve the requests arriving at ``schedule_ms`` (sorted) with the layout's instances.

    ``allowed_over`` < 0: no bound to fail. Returns per request its completion time (ms,
    NaN: never served) and the instance that served it (-1: none); per query its instance,
    start, end (ms) and size; whether the run ended on the bound and whether the backlog
    failed to drain in time.
    """
    np.random.seed(seed)
    n = ptr.shape[0] - 1
    count = schedule_ms.shape[0]
    active = np.zeros(n, np.bool_)
    factor = np.ones(n)
    remaining = np.zeros(n)
    finish = np.full(n, np.inf)
    idle = np.arange(n)  # a ring of idle instances, first idle first
    idle_head = 0
    idle_len = n
    first = np.zeros(n, np.int64)  # the query in service: its first request and size
    size = np.zeros(n, np.int64)
    started = np.zeros(n)
    timers = np.full(count + 1, np.inf)  # pending batch timers
    n_timers = 0
    done = np.full(count, np.nan)
    served_by = np.full(count, -1, np.int64)
    q_inst = np.empty(count, np.int64)
    q_start = np.empty(count)
    q_end = np.empty(count)
    q_size = np.empty(count, np.int64)
    n_queries = 0
    head = 0  # the oldest waiting request
    arrived = 0
    busy = 0
    over = 0
    generated = count == 0
    bound_failed = False
    drain_failed = False
    end_ms = (schedule_ms[count - 1] if count else 0.0) + drain_ms
    while True:
        t_arrival = schedule_ms[arrived] if arrived < count else np.inf
        j = -1
        t_done = np.inf
        for i in range(n):
            if finish[i] < t_done:
                t_done = finish[i]
                j = i
        k_timer = -1
        t_timer = np.inf
        for k in range(n_timers):
            if timers[k] < t_timer:
                t_timer = timers[k]
                k_timer = k
        t = min(t_arrival, t_done, t_timer)
        if t > end_ms:
            drain_failed = True
            break
        changed = False
        ending = False
        if t_done <= t_arrival and t_done <= t_timer:  # a query completes
            for r in range(first[j], first[j] + size[j]):
                done[r] = t
                if bound_ms > 0.0 and t - schedule_ms[r] > bound_ms:
                    over += 1
            q_inst[n_queries] = j
            q_start[n_queries] = started[j]
            q_end[n_queries] = t
            q_size[n_queries] = size[j]
            n_queries += 1
            active[j] = False
            finish[j] = np.inf
            busy -= 1
            idle[(idle_head + idle_len) % n] = j
            idle_len += 1
            changed = True
            if allowed_over >= 0 and over > allowed_over:
                bound_failed = True
                break
            if generated and head == arrived and busy == 0:
                break
            ending = generated
        elif t_arrival <= t_timer:  # a request arrives
            arrived += 1
            if arrived == count:
                generated = True  # its own dispatch below still has ending False
        else:  # a batch timer fires
            n_timers -= 1
            timers[k_timer] = timers[n_timers]
            timers[n_timers] = np.inf
            ending = generated
        while idle_len > 0 and head < arrived:  # dispatch (serving._serve's)
            queued = arrived - head
            timed_out = timeout_ms > 0.0 and t - schedule_ms[head] >= timeout_ms - 1e-9
            if queued >= max_batch:
                take = max_batch
            elif (queued >= batch and (timeout_ms == 0.0 or timed_out)) or timed_out \
                    or ending:
                take = queued
            else:
                if timeout_ms > 0.0:
                    due = schedule_ms[head] + timeout_ms
                    fresh = True
                    for k in range(n_timers):
                        if timers[k] == due:
                            fresh = False
                    if fresh:
                        timers[n_timers] = due
                        n_timers += 1
                break
            i = idle[idle_head]
            idle_head = (idle_head + 1) % n
            idle_len -= 1
            first[i] = head
            size[i] = take
            for r in range(head, head + take):
                served_by[r] = i
            head += take
            started[i] = t
            active[i] = True
            remaining[i] = work_ms[i] * draw(shape) + extra_ms[i]
            busy += 1
            changed = True
        if changed:
            rerate(t, active, remaining, finish, factor, ptr, cpus, threads, mptr, mnodes,
                   cpu_core, core_node, node_size, n_cores, params, vm_slow)
    return (done, served_by, q_inst[:n_queries], q_start[:n_queries], q_end[:n_queries],
            q_size[:n_queries], bound_failed, drain_failed)
