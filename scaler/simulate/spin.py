"""The spin term with the runtimes' back-off: a waiting thread keeps its CPU from other
instances only for min(wait, window) of each wait.

A spinning runtime's pool thread spins a bounded time, then blocks: ONNX Runtime 2^20
pause iterations (``ThreadPoolTempl::WorkerLoop``; 30-35 ms of CPU on the Xeon this was
built on, measured by ``scaler.engines.ort_spin``), OpenMP ``KMP_BLOCKTIME`` ms (200 by
default, 1 under Intel Model Zoo's launcher).

A thread of an instance whose CPUs hold q runnable threads each waits for a sibling queued
behind the q - 1 others on its CPU: about (q - 1) scheduler slices of wall time (the wait).
Spinning through it, it would take its fair share of the wait, wait / q, of its CPU from
the others; with the back-off it takes at most the window (a CPU budget). The kernel's
``spin`` (the share of its waiting time a thread stays runnable, taking its fair share) of
a spinning style on a layout is therefore

    spin = min(1, window / (wait / q)) = min(1, window / ((q - 1) / q x slice))

(``wait_cpu_ms`` is wait / q). With q <= 1 nothing queues and nobody else wants the CPU:
the spin takes nothing from anyone (spin 1, harmless).

The slice is Linux's base slice: ``sysctl_sched_base_slice`` 0.75 ms (0.70 since 6.15)
times 1 + ilog2(min(CPUs, 8)) (``kernel/sched/fair.c``, ``SCHED_TUNABLESCALING_LOG``):
1.5 ms on 2 CPUs, 3 ms from 8 CPUs on, as CFS's ``sched_min_granularity`` before EEVDF.

The window comes, in this order, from ``--assume spin_window_ms=W`` (the simulated runtime's,
e.g. 1 for the study's OpenMP under the Model Zoo launcher: used for simulated layouts, not
for the calibration groups, which ran their own runtime), a file of
``scaler.engines.ort_spin`` (measured here, with its spread over repeats), or the runs'
read-back (the most CPU a pool thread spun over the worker's one 0.1 s idle gap after
warm-up: a lower bound of the window where the gap's CPU share cut the spin short). Without any,
a spinning thread spins through every wait (spin 1, the upper bound), and the split says so.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

SLICE_BASE_MS = 0.75  # Linux sysctl_sched_base_slice (6.6-6.14; 0.70 ms since 6.15)
SLICE_SOURCE = ("Linux kernel/sched/fair.c: sysctl_sched_base_slice 0.75 ms x (1 + "
                "ilog2(min(CPUs, 8))) (SCHED_TUNABLESCALING_LOG), CFS's min granularity "
                "before EEVDF alike")
OPENMP_SOURCE = ("OpenMP KMP_BLOCKTIME: 200 ms by default (Intel OpenMP; TensorFlow < 2.5 "
                 "left it unset, tensorflow PR #48249), 1 ms under Intel Model Zoo's launcher "
                 "(IntelAI/models benchmarks/common/base_model_init.py): the study's runtime "
                 "is --assume spin_window_ms=1")
SPIN_FLOOR = 0.005  # median read-back idle spin shares below this: the style does not spin


def base_slice_ms(n_cpus: int) -> float:
    """Linux's base scheduler slice on a machine of ``n_cpus`` CPUs (ms)."""
    return SLICE_BASE_MS * (1 + int(math.log2(min(max(n_cpus, 1), 8))))


def wait_cpu_ms(layout: Any) -> float:
    """The CPU a waiting thread of the layout's multi-threaded instances takes from the
    others if it spins through one wait, median over them: its fair share 1/q of a wait of
    (q - 1) base slices, q the runnable threads per CPU on its CPUs (0 when q <= 1)."""
    from scaler.simulate.terms import threads_per_cpu

    q = threads_per_cpu(layout)
    waits = [max(float(q[i]) - 1.0, 0.0) / float(q[i]) for i in range(layout.instances)
             if layout.threads[i] > 1 and q[i] > 0]
    if not waits:
        return 0.0
    return statistics.median(waits) * base_slice_ms(int(layout.cpu_core.size))


def fraction(window: float | None, wait: float) -> float:
    """The kernel's spin of a thread whose spinning through a wait would take ``wait`` ms of
    CPU: min(1, window / wait) (1 without a window, or when the wait takes nothing)."""
    if window is None or wait <= 0.0:
        return 1.0
    return min(1.0, max(window, 0.0) / wait)


def windowed(v: dict[str, float], layout: Any) -> dict[str, float]:
    """``v`` with the kernel's spin cut to what the window allows on ``layout``
    (``v["spin_window_ms"]``; unchanged without one or without spin)."""
    window = v.get("spin_window_ms")
    if not v.get("spin") or window is None:
        return v
    return {**v, "spin": v["spin"] * fraction(window, wait_cpu_ms(layout))}


def readback_shares(runs: list[Any], style_of: Any
                    ) -> tuple[dict[str, float], dict[str, int]]:
    """Per style, the median read-back idle spin share of its instances, and how many."""
    shares: dict[str, list[float]] = {}
    for run in runs:
        for g in run.doc.get("groups", []):
            for inst in g.get("per_instance") or ():
                share = (inst.get("spin") or {}).get("share")
                if share is not None and not g.get("simulated"):
                    shares.setdefault(style_of(g), []).append(float(share))
    return ({s: statistics.median(x) for s, x in shares.items()},
            {s: len(x) for s, x in shares.items()})


def readback_windows(runs: list[Any], style_of: Any) -> dict[str, dict[str, Any]]:
    """Per spinning style: the most CPU one pool thread (a compute thread other than the
    caller) spun over the read-back idle gap, in ms, over the style's instances (a lower
    bound of its window's CPU when the gap's CPU share cut the spin short), with the range
    over them as its interval."""
    per: dict[str, list[float]] = {}
    shares: dict[str, list[float]] = {}
    for run in runs:
        for g in run.doc.get("groups", []):
            if g.get("simulated"):
                continue
            for inst in g.get("per_instance") or ():
                spin = inst.get("spin") or {}
                if spin.get("share") is not None:
                    shares.setdefault(style_of(g), []).append(float(spin["share"]))
                threads, cpu = spin.get("threads"), spin.get("cpu_s")
                if threads and threads > 1 and cpu is not None:
                    per.setdefault(style_of(g), []).append(1000.0 * cpu / (threads - 1))
    out = {}
    for style, values in per.items():
        if statistics.median(shares.get(style, [0.0])) < SPIN_FLOOR:
            continue
        out[style] = {"ms": max(values), "interval": [min(values), max(values)],
                      "instances": len(values), "source": "measured",
                      "from": f"read back: at least {max(values):.3g} ms, the most CPU a pool "
                              f"thread spun over the 0.1 s idle gap after warm-up, of "
                              f"{len(values)} {style} instance(s) (range [{min(values):.3g}, "
                              f"{max(values):.3g}])"}
    return out


def file_windows(doc: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    """Per style with a spinning runtime: the CPU a pool thread spins per wait (the
    plateau) of an ``ort_spin`` measurement, with its range over repeats."""
    out = {}
    for style, m in doc.get("styles", {}).items():
        if not m.get("spins"):
            continue
        lo, hi = m["spin_cpu_range_ms"]
        out[style] = {"ms": float(m["spin_cpu_ms"]), "interval": [float(lo), float(hi)],
                      "instances": 0, "source": "measured",
                      "from": f"measured here{(' (' + path + ')') if path else ''}: "
                              f"{m['runtime']} {m.get('version', '')} spins "
                              f"{m['spin_cpu_ms']:.3g} ms of CPU per wait, range "
                              f"[{lo:.3g}, {hi:.3g}] over {m['repeats']} repeats "
                              "(scaler.engines.ort_spin)" + (
                                  "; still growing at the longest gap: at least"
                                  if m.get("censored") else "")}
    return out


def on_layout(spins: float, window: dict[str, Any] | None, given: float | None, layout: Any
              ) -> tuple[float, str, list[float] | None]:
    """A style's kernel spin on a simulated layout (``spins``: 1 or 0), where it comes from,
    and its interval from the window's (a measured window's range over repeats)."""
    wait, n_cpus = wait_cpu_ms(layout), int(layout.cpu_core.size)
    w = given if given is not None else window["ms"] if window else None
    interval = None
    if given is None and window and window.get("interval"):
        interval = [spins * fraction(x, wait) for x in window["interval"]]
    return spins * fraction(w, wait), describe(window, given, wait, n_cpus), interval


def describe(window: dict[str, Any] | None, given: float | None, wait: float,
             n_cpus: int) -> str:
    """One line: where the window comes from, the wait it is set against, the result."""
    if given is not None:
        whence = f"window {given:g} ms given (--assume spin_window_ms)"
        w: float | None = given
    elif window is not None:
        whence = f"window {window['ms']:.3g} ms, {window['from']}"
        w = window["ms"]
    else:
        whence = ("no window measured or read back: assumed to spin through every wait "
                  f"(the upper bound; measure it with python -m scaler.engines.ort_spin; "
                  f"{OPENMP_SOURCE})")
        w = None
    return (f"1 x min(1, window / wait's CPU) = {fraction(w, wait):.3g}: {whence}; a wait "
            f"takes {wait:.3g} ms of CPU = (q - 1) / q x base slice "
            f"{base_slice_ms(n_cpus):g} ms (assumed: {SLICE_SOURCE})")
