"""What a worker's threads did, read back from ``/proc`` (never assumed from the style).

``snapshot`` lists every thread of this process: its name, the CPUs it may run on
(``Cpus_allowed_list`` of ``/proc/self/task/TID/status``) and the CPU time it used
(``utime + stime`` of ``/proc/self/task/TID/stat``). Taken after warm-up, the threads that
used CPU time and are not the worker's own Python threads are the runtime's compute threads;
a thread whose allowed CPUs are fewer than the process's was bound by the runtime (or by
scaler) to those CPUs: with compact binding, thread k of every unpinned instance sits on the
same CPU k ("stacked"). Under ``model-zoo`` a runtime that left its compute threads unbound
(stock TensorFlow's Eigen pool, XNNPACK's pthreadpool, and OpenVINO, whose
``ENABLE_CPU_PINNING`` reads back True yet binds no thread of a one-stream model on a small
machine) has them bound here by thread id (``bind_compact``), said in ``bound_by``.

``idle_spin`` measures spinning: the process's CPU time over a short idle gap right after
warm-up (no query runs; the worker's own threads sleep or block), as a share of the gap's
wall time times the compute threads. A runtime whose idle threads sleep at once scores near
0; one that spins (OpenMP with a long blocktime, ONNX Runtime's spinning pool) scores up to
1. Measured over a gap, not between queries: the time between two queries of the timed loop
is a few microseconds, and reading the process's CPU time around every query would cost more
than it shows. A short gap sees the spin that follows a query (what N instances sharing
cores fight over); a runtime that spins for longer than the gap scores 1.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from affinity.cpulist import format_cpulist, parse_cpulist

SPIN_GAP_S = 0.1  # the idle gap after warm-up (about 5 blocktimes of 1 ms and half of 200 ms)
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def snapshot(root: str = "/proc/self/task") -> list[dict[str, Any]]:
    """Every thread of this process: tid, name, allowed CPUs, CPU seconds (tid order)."""
    out = []
    for entry in sorted(os.listdir(root), key=int):
        try:
            with open(f"{root}/{entry}/status") as f:
                status = f.read()
            with open(f"{root}/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the thread ended while being read
            continue
        allowed = next((line.split(":", 1)[1].strip() for line in status.splitlines()
                        if line.startswith("Cpus_allowed_list:")), "")
        name = next((line.split(":", 1)[1].strip() for line in status.splitlines()
                     if line.startswith("Name:")), "")
        out.append({"tid": int(entry), "name": name, "cpus": allowed,
                    "cpu_s": round((int(fields[11]) + int(fields[12])) * _TICK_S, 3)})
    return out


def read_back(process_cpus: tuple[int, ...], before: list[dict[str, Any]] | None = None,
              table: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The threads after warm-up: all of them; the compute threads (those whose CPU time grew
    since ``before``, taken ahead of the warm-up queries, other than the worker's own Python
    threads but its main one, which runs the queries); and the CPUs of those bound to fewer
    CPUs than the process's ``process_cpus``."""
    table = snapshot() if table is None else table
    process = format_cpulist(process_cpus)
    own = {t.native_id for t in threading.enumerate()} - {threading.main_thread().native_id}
    earlier = {t["tid"]: t["cpu_s"] for t in before or []}
    compute = [t for t in table if t["tid"] not in own
               and t["cpu_s"] > earlier.get(t["tid"], 0.0)]
    bound = [t for t in compute if t["cpus"] and t["cpus"] != process]
    return {
        "process_cpus": process,
        "threads": table,
        "compute_tids": [t["tid"] for t in compute],
        # the CPUs of each bound compute thread, in thread order (creation order)
        "bound_cpus": [t["cpus"] for t in bound],
        "per_thread_bound": bool(bound),
        "bound_by": "runtime" if bound else None,
    }


def bind_compact(readback: dict[str, Any], process_cpus: tuple[int, ...],
                 sysfs_root: str = "/sys") -> dict[str, Any]:
    """Bind compute thread k to the k-th physical core of ``process_cpus`` (its first CPU;
    round robin past the last core), as OpenMP's ``compact,1,0`` does, for a runtime that
    did not bind its threads itself under ``model-zoo``; returns the read-back after it."""
    cores = compact_cores(process_cpus, sysfs_root)
    for k, tid in enumerate(readback["compute_tids"]):
        try:
            os.sched_setaffinity(tid, {cores[k % len(cores)]})
        except OSError:  # the thread ended meanwhile
            continue
    table = snapshot()
    tids = set(readback["compute_tids"])
    process = readback["process_cpus"]
    bound = [t for t in table if t["tid"] in tids and t["cpus"] and t["cpus"] != process]
    return {**readback, "threads": table, "bound_cpus": [t["cpus"] for t in bound],
            "per_thread_bound": bool(bound),
            "bound_by": "scaler, by thread id after warm-up" if bound else None}


def compact_cores(cpus: tuple[int, ...], sysfs_root: str = "/sys") -> list[int]:
    """The first CPU of each physical core among ``cpus``, in (socket, core) order."""
    first: dict[tuple[int, int], int] = {}
    for cpu in sorted(cpus):
        topo = f"{sysfs_root}/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id") as f:
                package = int(f.read())
            with open(f"{topo}/core_id") as f:
                core = int(f.read())
        except (OSError, ValueError):
            package, core = -1, cpu
        first.setdefault((package, core), cpu)
    return [first[key] for key in sorted(first)] or sorted(cpus)


def idle_spin(threads: int, gap_s: float = SPIN_GAP_S) -> dict[str, Any]:
    """CPU time this process used over ``gap_s`` of idleness, as a share of ``threads``
    CPUs' worth of that time (call right after a query, with no query running)."""
    wall0, cpu0 = time.monotonic(), time.process_time()
    time.sleep(gap_s)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    share = cpu / (wall * max(threads, 1)) if wall > 0 else None
    return {"gap_s": round(wall, 4), "cpu_s": round(cpu, 5), "threads": threads,
            "share": None if share is None else round(min(share, 1.0), 4),
            "method": "process CPU time over an idle gap after warm-up / (gap x threads)"}


def pin_every_thread(cpus: tuple[int, ...], root: str = "/proc/self/task") -> None:
    """Confine the threads that already run (the protocol reader, started before the
    worker pinned itself: ``sched_setaffinity`` binds the calling thread only) to ``cpus``."""
    for entry in os.listdir(root):
        try:
            os.sched_setaffinity(int(entry), cpus)
        except OSError:  # ended meanwhile
            continue


def cpus_of(entry: str) -> tuple[int, ...]:
    """A thread's ``cpus`` as numbers (empty when unreadable)."""
    try:
        return tuple(parse_cpulist(entry)) if entry else ()
    except ValueError:
        return ()
