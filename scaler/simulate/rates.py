"""The instance model's rates, compiled (numba): how fast each busy instance runs given who
else is busy, from the layout's features (CPU shares of its parallel steps and serial part,
busy SMT siblings, time slicing, thread synchronisation growing with the thread count,
memory contention and remote accesses), iterated to the fixed point of how many threads of
each instance are runnable. The event loops that use them are in ``scaler.simulate.des``;
the parameters' vector layout is ``P_*`` here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# indices into the parameter vector passed to the kernel
P_SERIAL, P_BETA, P_SLICE, P_SYNC, P_SMT, P_NUMA, P_GROWTH, P_SHARING, P_SPIN = range(9)
FIXED_POINT_STEPS = 200  # the activity fixed point converges in a few dozen at most
FIXED_POINT_TOL = 1e-10


@njit(cache=True)
def harmonic(n):
    """H(n) = 1 + 1/2 + ... + 1/n (0 for n < 1)."""
    h = 0.0
    for k in range(1, n + 1):
        h += 1.0 / k
    return h


@njit(cache=True)
def sync_growth(threads, growth):
    """How much larger the synchronisation cost of an instance of ``threads`` threads is than
    that of a 2-thread instance: H(threads − 1) ** growth. A parallel step ends when the
    slowest of the other threads arrives; for independent exponential delays the expected
    largest of t − 1 is H(t − 1) times the mean (Rényi's representation of exponential order
    statistics), so growth 1 is that law and growth 0 a cost independent of the thread
    count. H(1) = 1: a cost measured with 2 threads carries over unchanged to 2 threads."""
    t = int(threads + 0.5)
    if t <= 2:
        return 1.0
    return harmonic(t - 1) ** growth


@njit(cache=True)
def features(ptr, cpus, threads, mptr, mnodes, active, activity, cpu_core, core_node,
             node_size, smt_gain, spin, n_cores, out_e, out_waiting, out_mem, out_serial,
             out_remote):
    """For each active instance, when every other instance ``j`` keeps ``activity[j]`` of its
    threads runnable on average (1: all, always):

    - ``out_e``: its cores' worth of compute while all its threads run (its parallel phase);
      a CPU's time is shared fairly among the runnable threads on it, and a core's capacity
      among its busy SMT siblings (``(1 + smt_gain·(b − 1)) / b`` each of b);
    - ``out_waiting``: the share of time its threads wait for their CPU (1 − 1/load on it,
      averaged over its CPUs; 0 without time slicing);
    - ``out_mem``: the busy fraction of the rest of its nodes (cores used by other instances
      over cores not exclusively its own);
    - ``out_serial``: the core's worth its one running thread gets while the rest of it
      waits (its serial phase). The scheduler balances runnable threads over the CPUs the
      instance may use, cores first: its thread, its own waiting threads while they spin
      (``spin``·(threads − 1)) and the other instances' R runnable threads there
      (D = 1 + spin·(threads − 1) + R) fill its C cores k = D / C deep (at least 1, at most
      the CPUs per core), each thread getting a core's capacity over k, and beyond one
      thread per CPU a fair time share: ``(1 + smt_gain·(k − 1)) / k · min(1, width / D)``;
    - ``out_remote``: the share of its memory accesses that go to another node. Its compute
      is spread over nodes with weights w; memory bound to nodes M (``mnodes``) is split
      over M like its threads, so a thread on m in M finds w_m / W_M of it local and one on
      a node outside M none; unbound memory (no nodes) follows the threads over time, so
      the remote share is 1 − Σ w². Zero for an instance inside one node bound to it.
    """
    n = ptr.shape[0] - 1
    n_cpus = cpu_core.shape[0]
    n_nodes = node_size.shape[0]
    load = np.zeros(n_cpus)  # runnable threads per CPU (average)
    users = np.zeros(n_cores, np.int64)  # distinct active instances touching each core
    stamp = np.full(n_cores, -1, np.int64)
    for i in range(n):
        if not active[i]:
            continue
        width = ptr[i + 1] - ptr[i]
        per = threads[i] / width * activity[i]
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
    weight = np.zeros(n_nodes)  # its compute per node
    bound = np.zeros(n_nodes, np.bool_)
    own = np.zeros(n_cpus)  # its own runnable threads per CPU
    seen = np.full(n_cores, -1, np.int64)
    stamp[:] = -1
    for i in range(n):
        if not active[i]:
            out_e[i] = 0.0
            out_waiting[i] = 0.0
            out_mem[i] = 0.0
            out_serial[i] = 0.0
            out_remote[i] = 0.0
            continue
        width = ptr[i + 1] - ptr[i]
        per = threads[i] / width
        for k in range(ptr[i], ptr[i + 1]):
            own[cpus[k]] = per * activity[i]
        e = 0.0
        waiting = 0.0
        pool = 0.0  # the other instances' runnable threads on its CPUs
        cores = 0  # distinct cores among its CPUs
        mine[:] = 0.0
        weight[:] = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            c = cpus[k]
            core = cpu_core[c]
            b = busy_cpus[core]
            cap = (1.0 + smt_gain * (b - 1)) / b
            total = load[c] - own[c] + per  # all of its threads runnable
            share = 1.0 if total <= 1.0 else 1.0 / total
            e += per * share * cap
            weight[core_node[core]] += per * share * cap
            if total > 1.0:
                waiting += 1.0 - 1.0 / total
            pool += max(load[c] - own[c], 0.0)
            if seen[core] != i:
                seen[core] = i
                cores += 1
            if users[core] == 1 and stamp[core] != i:
                stamp[core] = i
                mine[core_node[core]] += 1.0
        mem = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            m = core_node[cpu_core[cpus[k]]]
            rest = node_size[m] - mine[m]
            if rest > 0.0:
                mem += min(1.0, (busy_node[m] - mine[m]) / rest)
        remote = 0.0
        if e > 0.0:
            weight /= e
            if mptr[i + 1] == mptr[i]:  # unbound: memory follows the threads
                remote = 1.0
                for m in range(n_nodes):
                    remote -= weight[m] * weight[m]
            else:
                bound[:] = False
                for k in range(mptr[i], mptr[i + 1]):
                    bound[mnodes[k]] = True
                inside = 0.0
                for m in range(n_nodes):
                    if bound[m]:
                        inside += weight[m]
                for m in range(n_nodes):
                    if not bound[m]:
                        remote += weight[m]
                    elif inside > 0.0:
                        remote += weight[m] * (1.0 - weight[m] / inside)
        for k in range(ptr[i], ptr[i + 1]):
            own[cpus[k]] = 0.0
        out_e[i] = e
        out_waiting[i] = waiting / width
        out_mem[i] = mem / width
        demand = 1.0 + spin * (threads[i] - 1.0) + pool
        deep = min(max(demand / cores, 1.0), width / cores)
        out_serial[i] = (1.0 + smt_gain * (deep - 1.0)) / deep * min(1.0, width / demand)
        out_remote[i] = max(remote, 0.0)


@njit(cache=True)
def amdahl(e, serial, threads, params):
    """Time of a query over its time alone on one dedicated core, before the costs: the
    serial fraction s runs on one thread at speed σ, the rest on the cores' worth ``e``.
    With ``serial_sharing`` w, 1/σ = (1 − w)/min(1, e) + w/``serial``: at w = 0 the serial
    part runs at one core's speed whenever the instance has a core's worth (the model before
    issue 15); at w = 1 at the fair CPU share its one running thread gets beside the other
    instances' runnable (working or spinning) threads. A single-threaded instance has no
    separate serial phase."""
    s = params[P_SERIAL]
    if threads <= 1.0:
        return 1.0 / e
    w = params[P_SHARING]
    inv = (1.0 - w) / min(1.0, e) + w / serial
    return s * inv + (1.0 - s) / e


@njit(cache=True)
def slowdown(amd, waiting, mem, remote, cross_load, threads, params):
    """How many times longer a query takes than alone on one dedicated core.

    ``amd`` (:func:`amdahl`) times memory contention ``1 + β·mem``, times the cost of sharing
    CPUs ``1 + (slice + sync·growth(threads)·[threads > 1])·waiting`` (the costs of time
    slicing grow with the share of time a thread waits for its CPU and level off as it nears
    1; the synchronisation part grows with the thread count, :func:`sync_growth`), times the
    remote-memory term ``1 + numa_penalty·remote·cross_load``.
    """
    sync = params[P_SYNC] * sync_growth(threads, params[P_GROWTH]) if threads > 1.0 else 0.0
    share = 1.0 + (params[P_SLICE] + sync) * waiting
    numa = 1.0 + params[P_NUMA] * remote * cross_load
    return amd * (1.0 + params[P_BETA] * mem) * share * numa


@njit(cache=True)
def rates(ptr, cpus, threads, mptr, mnodes, active, cpu_core, core_node, node_size, n_cores,
          params, vm_slow, out_factor):
    """The slowdown of every active instance (times its vm factor) into ``out_factor``.

    Each instance is in its serial phase a fraction f = (s/σ)/amdahl of the time, with one
    thread working and the others waiting; a waiting thread keeps its CPU busy the share
    ``spin`` of that time (spin-waiting runtimes: OpenMP's KMP_BLOCKTIME, Eigen's spinning
    pool) and leaves it to the other instances the rest. The others' CPU shares depend on
    that, and f on the shares: the activity 1 − (1 − spin)·f·(1 − 1/threads) is iterated to
    its fixed point (at spin = 1 every thread is always runnable and one pass suffices;
    with ``serial_sharing`` 0 too, this is the model before issue 15). Then the cross-node
    load: the remote accesses of all instances, Σ remote × useful cores' worth (1/amdahl),
    over what the machine's cores would make if all did useful work with their memory spread
    evenly over its k nodes (remote share 1 − 1/k), capped at 1.
    """
    n = ptr.shape[0] - 1
    e = np.zeros(n)
    waiting = np.zeros(n)
    mem = np.zeros(n)
    serial = np.zeros(n)
    remote = np.zeros(n)
    amd = np.ones(n)
    activity = np.ones(n)
    w = params[P_SHARING]
    sleeps = 1.0 - params[P_SPIN]
    for _ in range(FIXED_POINT_STEPS):
        features(ptr, cpus, threads, mptr, mnodes, active, activity, cpu_core, core_node,
                 node_size, params[P_SMT], params[P_SPIN], n_cores, e, waiting, mem, serial,
                 remote)
        change = 0.0
        for i in range(n):
            if not active[i]:
                continue
            amd[i] = amdahl(e[i], serial[i], threads[i], params)
            nxt = 1.0
            if threads[i] > 1.0 and sleeps > 0.0:
                f = params[P_SERIAL] * ((1.0 - w) / min(1.0, e[i]) + w / serial[i]) / amd[i]
                nxt = 1.0 - sleeps * f * (1.0 - 1.0 / threads[i])
            change = max(change, abs(nxt - activity[i]))
            activity[i] = 0.5 * (activity[i] + nxt)  # damped: shares and f pull opposite ways
        if change < FIXED_POINT_TOL:
            break
    nodes_with_cores = np.zeros(node_size.shape[0], np.bool_)
    for core in range(n_cores):
        nodes_with_cores[core_node[core]] = True
    k = 0
    for m in range(node_size.shape[0]):
        if nodes_with_cores[m]:
            k += 1
    spread = 1.0 - 1.0 / k if k > 1 else 1.0
    traffic = 0.0
    for i in range(n):
        if active[i]:
            traffic += remote[i] / amd[i]
    cross_load = min(1.0, traffic / (spread * n_cores))
    for i in range(n):
        if active[i]:
            out_factor[i] = slowdown(amd[i], waiting[i], mem[i], remote[i], cross_load,
                                     threads[i], params) * vm_slow[i]
