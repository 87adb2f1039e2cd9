"""The noise meter: how busy a machine was while a figure was measured.

These machines are shared, so every measured window records the CPU time that processes other
than the measurement used on the CPUs it measured on: per-CPU counters from ``/proc/stat``
minus the workers' own ``utime + stime`` (``/proc/PID/stat``, all threads) and the
coordinator's own CPU time, as a share of the window times the CPUs. Steal time (a hypervisor
giving the CPU to someone else), the load average and the CPU frequency (where readable) are
recorded beside it. A window is ``noisy`` when others used more than a limit (5% by default).

``WindowProbe`` measures one group's window (the runner); ``CpuMeter`` measures a block of
code on the whole machine, its own process and children included (the bench); both read the
same counters. Standard library only. Every reader takes the ``/proc`` (and cpufreq) root it
reads, so that tests can hand it files they wrote.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

NOISE_LIMIT = 0.05  # others' share of the measured CPUs above which a window is noisy
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest is in user)
_STEAL_FIELD = 7
HZ = os.sysconf("SC_CLK_TCK")
PROC = "/proc"
CPUFREQ = "/sys/devices/system/cpu"


def loadavg(proc: str = PROC) -> tuple[float, float, float]:
    with open(f"{proc}/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def cpu_jiffies(cpus: Iterable[int] | None = None, stat: str = "/proc/stat"
                ) -> tuple[int, int]:
    """(busy, steal) jiffies summed over ``cpus`` (all CPUs when None)."""
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    busy = steal = 0
    with open(stat) as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *rest = line.split()
            if (wanted is None and name != "cpu") or (wanted is not None and name not in wanted):
                continue
            values = [int(v) for v in rest]
            busy += sum(values[i] for i in _BUSY_FIELDS if i < len(values))
            steal += values[_STEAL_FIELD] if len(values) > _STEAL_FIELD else 0
    return busy, steal


def process_cpu_s(pid: int, proc: str = PROC) -> float | None:
    """CPU seconds (user + system, all threads) of a live process, None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime (fields 14, 15)


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_freq_mhz(cpus: Iterable[int], root: str = CPUFREQ) -> float | None:
    """Mean current frequency of ``cpus`` from cpufreq, None where it is not exposed."""
    found = []
    for cpu in cpus:
        try:
            with open(f"{root}/cpu{cpu}/cpufreq/scaling_cur_freq") as f:
                found.append(int(f.read()) / 1000.0)
        except (OSError, ValueError):
            continue
    return round(sum(found) / len(found), 1) if found else None


@dataclass
class WindowProbe:
    """Others' CPU time on a group's CPUs during its measured window.

    ``begin(pids)`` when every worker is running, ``end()`` when they are told to stop;
    ``result`` then holds the figures. ``pids`` are the group's local processes (workers, or
    the QEMU processes of VMs): their CPU time is the measurement's own. ``proc``, ``cpufreq``,
    ``clock`` and ``own_cpu_s`` are where it reads (tests hand it files and times they made).
    """

    cpus: tuple[int, ...]
    limit: float = NOISE_LIMIT
    result: dict[str, Any] = field(default_factory=dict)
    proc: str = PROC
    cpufreq: str = CPUFREQ
    clock: Callable[[], float] = time.monotonic
    own_cpu_s: Callable[[], float] = self_cpu_s

    def begin(self, pids: Iterable[int]) -> None:
        self._pids = [p for p in pids if p]
        self._t0 = self.clock()
        self._busy0, self._steal0 = cpu_jiffies(self.cpus, f"{self.proc}/stat")
        self._own0 = {p: process_cpu_s(p, self.proc) for p in self._pids}
        self._self0 = self.own_cpu_s()

    def end(self) -> dict[str, Any]:
        if not hasattr(self, "_t0"):
            return {}
        window = self.clock() - self._t0
        busy, steal = cpu_jiffies(self.cpus, f"{self.proc}/stat")
        workers = 0.0
        gone = []
        for pid, before in self._own0.items():
            now = process_cpu_s(pid, self.proc)
            if now is None or before is None:
                gone.append(pid)  # its time is not separable: counted as others' (stricter)
                continue
            workers += now - before
        coordinator = self.own_cpu_s() - self._self0
        capacity = max(window * len(self.cpus), 1e-9)
        busy_s = (busy - self._busy0) / HZ
        others = max(busy_s - workers - coordinator, 0.0)
        self.result = {
            "window_s": round(window, 3), "cpus": list(self.cpus),
            "others_cpu_share": round(min(others / capacity, 1.0), 4),
            "workers_cpu_share": round(min(workers / capacity, 1.0), 4),
            "coordinator_cpu_s": round(coordinator, 3),
            "steal_share": round((steal - self._steal0) / HZ / capacity, 4),
            "loadavg": list(loadavg(self.proc)),
            "freq_mhz": cpu_freq_mhz(self.cpus, self.cpufreq),
            "limit": self.limit,
        }
        if gone:
            self.result["unaccounted_pids"] = gone
        # the counters tick at 1/HZ s per CPU: over a short window that is a large share
        resolution = 2.0 / HZ / max(window, 1e-9)
        self.result["resolution_share"] = round(min(resolution, 1.0), 4)
        self.result["noisy"] = self.result["others_cpu_share"] - resolution > self.limit
        return self.result


async def wait_quiet(cpus: tuple[int, ...], limit: float, max_wait_s: float,
                     window_s: float = 1.0, proc: str = PROC) -> dict[str, Any]:
    """Wait up to ``max_wait_s`` for others to use under ``limit`` of ``cpus``, measured over
    ``window_s`` windows (each window is a measurement, not a poll for an event). Returns what
    was seen and whether it gave up."""
    began = time.monotonic()
    checks = 0
    while True:
        checks += 1
        busy0, _ = cpu_jiffies(cpus, f"{proc}/stat")
        t0 = time.monotonic()
        await asyncio.sleep(window_s)
        busy1, _ = cpu_jiffies(cpus, f"{proc}/stat")
        share = min((busy1 - busy0) / HZ / max((time.monotonic() - t0) * len(cpus), 1e-9), 1.0)
        waited = time.monotonic() - began
        if share <= limit or waited >= max_wait_s:
            return {"quiet": share <= limit, "waited_s": round(waited, 1), "checks": checks,
                    "others_cpu_share": round(share, 4)}


def _own_and_children_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class CpuMeter:
    """Context manager: wall time, own CPU time and everyone else's CPU time in the block,
    over the whole machine. Children must have exited (and been waited for) by the end of the
    block, or their CPU time is counted as foreign."""

    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    result: dict[str, Any] = field(default_factory=dict)
    proc: str = PROC
    clock: Callable[[], float] = time.monotonic
    own_cpu_s: Callable[[], float] = _own_and_children_cpu_s

    def __enter__(self) -> CpuMeter:
        self._load0 = loadavg(self.proc)
        self._busy0, self._steal0 = cpu_jiffies(None, f"{self.proc}/stat")
        self._own0 = self.own_cpu_s()
        self._t0 = self.clock()
        return self

    def __exit__(self, *_: Any) -> None:
        wall = self.clock() - self._t0
        busy, steal = cpu_jiffies(None, f"{self.proc}/stat")
        busy_s = (busy - self._busy0) / HZ
        own_s = self.own_cpu_s() - self._own0
        capacity = max(wall * self.cpus, 1e-9)
        self.result = {
            "wall_s": round(wall, 3),
            "cpus": self.cpus,
            "busy_share": round(busy_s / capacity, 3),
            "own_cpu_s": round(own_s, 3),
            "foreign_cpu_s": round(max(busy_s - own_s, 0.0), 3),
            "foreign_share": round(min(max(busy_s - own_s, 0.0) / capacity, 1.0), 3),
            "steal_share": round((steal - self._steal0) / HZ / capacity, 3),
            "loadavg_start": list(self._load0),
            "loadavg_end": list(loadavg(self.proc)),
        }
