"""The speed probe's own cost (issue 27): each window gets two edges (before ``start`` and
after the samples), on every measured CPU at once; the target is under 1% of a 2 s window."""

from __future__ import annotations

import os
import statistics
from typing import Any

WINDOW_S = 2.0  # the window the overhead is judged against
TARGET_SHARE = 0.01


def probe_bench(reps: int = 9) -> dict[str, Any]:
    """Median wall time of one edge on all usable CPUs (after calibration and buffers)."""
    from scaler import speedprobe

    cpus = sorted(os.sched_getaffinity(0))
    speedprobe.prepare(cpus)
    edges = [speedprobe.probe(cpus) for _ in range(reps)]
    took = [e["took_ms"] for e in edges]
    median = statistics.median(took)
    return {"cpus": cpus, "edge_ms": took, "median_edge_ms": median,
            "share_of_window": 2 * median / 1e3 / WINDOW_S,
            "calibration": edges[0]["calibration"]}


def rows(results: dict[str, Any], table: Any) -> None:
    from scaler.bench.rows import cond, section_of

    sp = section_of(results, "speedprobe")
    if "median_edge_ms" not in sp:
        return
    table.add("speedprobe", f"one edge on CPUs {len(sp['cpus'])} at once (median of "
              f"{len(sp['edge_ms'])})", f"{sp['median_edge_ms']:.1f} ms", "<= 20 ms",
              sp["median_edge_ms"] <= 20, cond=cond(sp))
    table.add("speedprobe", f"two edges over a {WINDOW_S:g} s window",
              f"{sp['share_of_window']:.2%}", f"< {TARGET_SHARE:.0%}",
              sp["share_of_window"] < TARGET_SHARE, cond=cond(sp))
