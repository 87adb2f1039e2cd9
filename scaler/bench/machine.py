"""How busy the machine was while a figure was measured, and waiting until it is quiet.

The bench shares its two cores with other people's work, so every section records the load
average and, more directly, the CPU time that processes *other than the bench and its
children* used during the section (``foreign_share``: 0 = the bench had the machine to
itself, 1 = others kept every CPU busy). Figures measured while others were busy are not
hidden, they are labelled. The counters are ``scaler.noise``'s, as the runner's noise meter
reads them. Standard library only.
"""

from __future__ import annotations

import time
from typing import Any

from scaler.noise import CpuMeter, loadavg  # one meter for the bench and the runner

__all__ = ["CpuMeter", "foreign_share", "loadavg", "wait_until_quiet"]


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
