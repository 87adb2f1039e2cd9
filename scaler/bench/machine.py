"""How busy the machine was while a figure was measured, and waiting until it is quiet.

The bench shares its two cores with other people's work, so every section records the load
average and, more directly, the CPU time that processes *other than the bench and its
children* used during the section (``foreign_share``: 0 = the bench had the machine to
itself, 1 = others kept every CPU busy). Figures measured while others were busy are not
hidden, they are labelled. Standard library only.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest is in user)
_STEAL_FIELD = 7


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies summed over all CPUs, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[i] for i in _BUSY_FIELDS if i < len(values)), values[_STEAL_FIELD]


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class CpuMeter:
    """Context manager: wall time, own CPU time and everyone else's CPU time in the block.

    Children must have exited (and been waited for) by the end of the block, or their CPU
    time is counted as foreign; every section of the bench waits for its children.
    """

    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    result: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> CpuMeter:
        self._hz = os.sysconf("SC_CLK_TCK")
        self._load0 = loadavg()
        self._busy0, self._steal0 = _cpu_jiffies()
        self._own0 = _own_cpu_s()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *_: Any) -> None:
        wall = time.monotonic() - self._t0
        busy, steal = _cpu_jiffies()
        busy_s = (busy - self._busy0) / self._hz
        own_s = _own_cpu_s() - self._own0
        capacity = max(wall * self.cpus, 1e-9)
        self.result = {
            "wall_s": round(wall, 3),
            "cpus": self.cpus,
            "busy_share": round(busy_s / capacity, 3),
            "own_cpu_s": round(own_s, 3),
            "foreign_cpu_s": round(max(busy_s - own_s, 0.0), 3),
            "foreign_share": round(min(max(busy_s - own_s, 0.0) / capacity, 1.0), 3),
            "steal_share": round((steal - self._steal0) / self._hz / capacity, 3),
            "loadavg_start": list(self._load0),
            "loadavg_end": list(loadavg()),
        }


def foreign_share(window_s: float) -> float:
    """Share of all CPUs used by others during ``window_s`` seconds in which we sleep."""
    with CpuMeter() as meter:
        time.sleep(window_s)
    return float(meter.result["foreign_share"])


def wait_until_quiet(max_load: float, max_foreign: float, max_wait_s: float,
                     window_s: float = 3.0, say: Any = None) -> dict[str, Any]:
    """Sleep until the 1-minute load is under ``max_load`` and others use under
    ``max_foreign`` of the CPUs over a ``window_s`` window, or ``max_wait_s`` has passed.

    The load average also counts the bench's own earlier sections, which is why the direct
    foreign-CPU window is checked too. Returns what was seen, including whether it gave up.
    """
    began = time.monotonic()
    checks = 0
    while True:
        checks += 1
        share = foreign_share(window_s)
        load1 = loadavg()[0]
        quiet = load1 < max_load and share < max_foreign
        waited = time.monotonic() - began
        if quiet or waited >= max_wait_s:
            return {"quiet": quiet, "waited_s": round(waited, 1), "checks": checks,
                    "load1": load1, "foreign_share": share, "max_load": max_load,
                    "max_foreign": max_foreign}
        if say is not None and checks % 4 == 1:
            say(f"bench: waiting for a quiet machine (load {load1:.2f}, others use "
                f"{share:.0%} of the CPUs; waited {waited:.0f} of {max_wait_s:.0f} s)")
        time.sleep(min(10.0, max(0.0, max_wait_s - waited)))
