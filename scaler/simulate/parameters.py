"""The instance model's parameters: name, assumed value, bounds and meaning, which are fitted,
and where each assumed value comes from when runs do not measure it."""

from __future__ import annotations

import math

from scaler.errors import UsageError

# the remote-memory penalty the cited source implies (SOURCES['numa_penalty'])
NUMA_PENALTY_CITED = 0.8

# name -> (assumed value, bounds, meaning); t1_ms and serial_fraction are always measured
PARAMETERS: dict[str, tuple[float | None, tuple[float, float], str]] = {
    "t1_ms": (None, (1e-6, math.inf),
              "ms per batch-1 query alone on one dedicated core"),
    "serial_fraction": (None, (0.0, 1.0),
                        "Amdahl serial fraction of a query over the cores it gets"),
    "memory_contention": (0.0, (0.0, 10.0),
                          "slowdown when the rest of the instance's NUMA nodes is busy with "
                          "other instances (memory bandwidth, shared cache)"),
    "slice_cost": (0.0, (0.0, 10.0),
                   "extra slowdown of single-threaded instances sharing a CPU, times the "
                   "share of time their thread waits for it (time slicing)"),
    "sync_cost": (0.0, (0.0, 10.0),
                  "further slowdown of multi-threaded instances, times the same share "
                  "(threads waiting for descheduled siblings)"),
    "batch_cost": (1.0, (0.01, 4.0),
                   "cost of each extra image of a batch relative to the first "
                   "(1: no batching gain)"),
    "smt_gain": (0.0, (0.0, 1.0),
                 "extra throughput of a core when both SMT siblings are busy"),
    "numa_penalty": (NUMA_PENALTY_CITED, (0.0, 10.0),
                     "remote memory: extra time of an instance whose memory accesses are all "
                     "remote while the cross-node load is 1; the term is numa_penalty x "
                     "remote share x cross-node load, zero inside the nodes memory is bound to"),
    "sync_growth": (1.0, (0.0, 3.0),
                    "sync_cost grows as H(threads - 1) ** sync_growth with the instance's "
                    "thread count (1: expected slowest of threads - 1 exponential delays; "
                    "0: the same at any count); H(1) = 1, so 2 threads are unchanged"),
    "serial_sharing": (1.0, (0.0, 1.0),
                       "switch: the serial part of a query runs at the fair CPU share its one "
                       "thread gets beside other instances' runnable threads (1), or at one "
                       "core's speed (0, the model before issue 15); not fitted"),
    "spin": (0.0, (0.0, 1.0),
             "share of its waiting time a thread of a multi-threaded instance keeps its CPU "
             "busy (spin-waiting); 0: it sleeps and leaves the CPU to other instances"),
    "vm_slowdown": (0.0, (0.0, 10.0), "vm: extra share of compute time (exits)"),
    "vm_overhead_ms": (0.0, (0.0, math.inf), "vm: extra ms per query"),
    "core_speed": (1.0, (1e-3, 100.0),
                   "per-core speed of the simulated machine relative to the calibration host"),
}
FITTED = ("t1_ms", "serial_fraction", "memory_contention", "slice_cost", "sync_cost",
          "batch_cost", "vm_slowdown", "vm_overhead_ms", "numa_penalty", "sync_growth",
          "spin")
# where the assumed value of each parameter comes from, when runs do not measure it
SOURCES = {
    "memory_contention": "0: no contention unless runs show it",
    "slice_cost": "0: time slicing costs nothing beyond the CPU share unless runs show it",
    "sync_cost": "0: waiting threads cost nothing beyond the CPU share unless runs show it",
    "batch_cost": "1: no batching gain unless runs show it",
    "smt_gain": "0: a busy SMT sibling adds nothing (conservative; set with --assume)",
    "vm_slowdown": "0: no virtualization cost unless vm runs on real hardware show it",
    "vm_overhead_ms": "0: no per-query virtualization cost unless vm runs show it",
    "core_speed": "1: the simulated machine's cores are as fast as the calibration host's",
    "numa_penalty": f"{NUMA_PENALTY_CITED:g}: tensorflow PR #17656 (Intel, 2018): a NUMA-aware "
                    "ResNet50 inference was 1.4x faster than stock TensorFlow on a 2-socket "
                    "Skylake, i.e. an instance spanning both sockets ran at about 0.71 of "
                    "socket-local; in this model that instance has remote share 0.5 (memory "
                    "unbound over 2 nodes) at cross-node load 1, so 1 + p x 0.5 = 1.4 gives "
                    f"p = {NUMA_PENALTY_CITED:g}; runs on a multi-node host measure it instead",
    "sync_growth": "1: a parallel step waits for the slowest of threads - 1 siblings; for "
                   "independent exponential delays its expected wait is H(threads - 1) times "
                   "the mean (Renyi's representation of exponential order statistics)",
    "serial_sharing": "1: the kernel's fair scheduler balances runnable threads over the "
                      "CPUs an instance may use, cores first, and gives each the same share, "
                      "so the one thread of a serial phase gets its share of the instance's "
                      "CPUs beside the other instances' runnable threads",
    "spin": "0: TensorFlow's Eigen pool and XNNPACK's pthreadpool spin briefly and then "
            "sleep; on the committed TF 2.21 runs spin=0 validates better than spin=1 (the "
            "model before issue 15, every thread always runnable); OpenMP runtimes spin "
            "200 ms after a parallel region by default (KMP_BLOCKTIME), nearer 1",
}


def check_given(given: dict[str, float]) -> None:
    """UsageError for an unknown parameter name or a value outside its bounds."""
    for name, value in given.items():
        if name not in PARAMETERS:
            raise UsageError(f"unknown model parameter {name!r}: choose from "
                             f"{', '.join(PARAMETERS)}")
        lo, hi = PARAMETERS[name][1]
        if not lo <= value <= hi:
            raise UsageError(f"{name} must lie in [{lo:g}, {hi:g}], not {value:g}")
