"""A runtime's spin window from the CPU time its idle threads burn over gaps of known length.

A runtime whose pool threads spin before they block (ONNX Runtime's ``WorkerLoop`` spins
2^20 pause iterations, OpenMP ``KMP_BLOCKTIME`` ms) burns, over an idle gap of g ms after a
run, ``rate x min(g, window)`` ms of CPU per pool thread: the CPU grows with the gap up to
the window, then stays flat. :func:`estimate_window` fits that knee to one series of
(gap, CPU per pool thread) pairs; :func:`summarize` fits each repeat's series on its own and
reports the median window with the spread over repeats. Pure arithmetic: the measurement is
``scaler.engines.ort_spin``, the simulator's use of the window ``scaler.simulate.spin``.

The window is a CPU budget (``spin_cpu_ms``, the plateau), which a loaded machine does not
change: a spinner that gets half a CPU burns the same budget over twice the wall time
(``window_ms``, the knee, the budget over the rate seen on short gaps).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

NO_SPIN_SHARE = 0.02  # CPU per pool thread below 2% of every gap: the runtime does not spin
KNEE_STEPS = 400  # candidate knees between half the shortest and twice the longest gap


def estimate_window(gaps_ms: Sequence[float], cpu_ms: Sequence[float]) -> dict[str, Any]:
    """The knee of ``cpu = rate x min(gap, knee)`` fitted by least squares to the pairs
    (CPU per pool thread in ms over an idle gap of ``gaps_ms``): ``window_ms`` (the knee),
    ``spin_cpu_ms`` (rate x knee, the plateau), ``rate`` and ``censored`` (the CPU still grew
    at the longest gap: the window is at least that gap). A series whose CPU stays below
    ``NO_SPIN_SHARE`` of every gap does not spin: window 0. ValueError for fewer than two
    distinct gaps or a negative or non-finite value."""
    pairs = [(float(g), float(c)) for g, c in zip(gaps_ms, cpu_ms, strict=True)]
    if any(not (math.isfinite(g) and math.isfinite(c)) or g <= 0 for g, c in pairs):
        raise ValueError("gaps must be positive and CPU times finite")
    gaps = sorted({g for g, _ in pairs})
    if len(gaps) < 2:
        raise ValueError("a spin window needs gaps of at least two lengths")
    cpu = [max(c, 0.0) for _, c in pairs]
    if all(c < NO_SPIN_SHARE * g for (g, _), c in zip(pairs, cpu)):
        return {"window_ms": 0.0, "spin_cpu_ms": 0.0, "rate": 0.0, "censored": False,
                "spins": False, "rms_ms": _rms([c for c in cpu])}
    lo, hi = math.log(gaps[0] / 2.0), math.log(gaps[-1] * 2.0)
    knees = sorted({*gaps, *(math.exp(lo + (hi - lo) * k / KNEE_STEPS)
                             for k in range(KNEE_STEPS + 1))})
    best = None
    for knee in knees:
        x = [min(g, knee) for g, _ in pairs]
        rate = sum(a * b for a, b in zip(x, cpu)) / sum(a * a for a in x)
        sse = sum((rate * a - b) ** 2 for a, b in zip(x, cpu))
        if best is None or sse < best[0] - 1e-12:
            best = (sse, knee, rate)
    sse, knee, rate = best
    censored = knee >= gaps[-1]
    knee = min(knee, gaps[-1])  # beyond the longest gap the data cannot place it
    return {"window_ms": knee, "spin_cpu_ms": rate * knee, "rate": rate,
            "censored": censored, "spins": True, "rms_ms": math.sqrt(sse / len(pairs))}


def _rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def summarize(series: Sequence[tuple[Sequence[float], Sequence[float]]]) -> dict[str, Any]:
    """One fit per repeat (its gaps and CPU per pool thread), then the median window and
    plateau over repeats with their range (min, max) and each repeat's fit."""
    if not series:
        raise ValueError("no repeat to estimate a spin window from")
    fits = [estimate_window(g, c) for g, c in series]
    windows = [f["window_ms"] for f in fits]
    plateaus = [f["spin_cpu_ms"] for f in fits]
    spread = max(windows) - min(windows)
    median = statistics.median(windows)
    return {
        "window_ms": median, "window_range_ms": [min(windows), max(windows)],
        "spin_cpu_ms": statistics.median(plateaus),
        "spin_cpu_range_ms": [min(plateaus), max(plateaus)],
        "repeats": len(fits), "censored": any(f["censored"] for f in fits),
        "spins": sum(f["spins"] for f in fits) > len(fits) / 2,
        "relative_spread": spread / median if median > 0 else None,
        "per_repeat": fits,
    }
