"""How much of a server figure is the harness: null-engine probes in the same run.

The null engine infers nothing, so a null instance served by the same open-loop generator,
on the same placement, partitions and target, shows what the harness alone costs:

- ``ceiling``: requests a second the harness serves when everything arrives at once (a
  flood of ``CEILING_REQUESTS``); the peak search starts at the smaller of it and the
  layout's closed-loop rate, since no rate above what the harness carries can pass;
- ``at_rate``: the harness's own latency (p50, p99 from the scheduled arrival) at a rate,
  set beside the p50 measured there with the real engine; over ``SHARE_LIMIT`` of it, the
  run says so in a note (that p50 is partly the harness).

These probes are not groups of the run (they measure the tool, not the layout): they are
kept in run.json under ``harness``, with their settings and generator accuracy. Null
workers here are started and closed for the probe alone; the run's warm workers stay idle
in the pool meanwhile.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.session import Session

CEILING_REQUESTS = 20_000
FLOOD_QPS = 10_000_000.0  # every request of the flood is due within a few milliseconds
AT_RATE_S = 1.0  # seconds of arrivals for a harness latency probe ...
AT_RATE_REQUESTS = (1_000, 200_000)  # ... within these counts
SHARE_LIMIT = 0.05


async def serve_null(s: Session, placement_name: str, n: int, rate: float, count: int,
                     kind: str) -> dict[str, Any]:
    """Serve ``count`` requests at ``rate`` with null instances planned as the run's own
    (same placement, partitions, target); the summary is appended to ``s.harness``."""
    import numpy as np

    from scaler import serving
    from scaler.targets import WorkerRequest

    placement = s.placement(placement_name)
    plan = s.plan(placement, n)
    reqs = [WorkerRequest(i.index, replace(s.worker_spec(i, 1), engine="null",
                                           warmup_s=0.1), i.partition(), i.host)
            for i in plan.instances]
    rules = replace(s.rules, min_queries=count, latency_bound_ms=None, bound_percentile=None)
    outcome = await serving.serve_group(reqs, rules, s.target(placement), rate, count,
                                        s.settings.seed * 1000 + 999, serving.ServePolicy())
    entry: dict[str, Any] = {"kind": kind, "layout": f"{placement_name} x{n}", "engine": "null",
                             "target_qps": rate, "requests": count,
                             "complete": outcome.complete, "errors": outcome.errors,
                             "generator": outcome.generator}
    if outcome.done_s is not None:
        finished = ~np.isnan(outcome.done_s)
        latency = (outcome.done_s - outcome.scheduled_s)[finished] * 1000.0
        span = float(outcome.done_s[finished].max()) if finished.any() else 0.0
        entry.update(completed=int(finished.sum()),
                     achieved_qps=float(finished.sum() / span) if span > 0 else None,
                     drain_timed_out=outcome.drain_timed_out)
        if latency.size:
            entry["latency_ms"] = {"p50": float(np.percentile(latency, 50)),
                                   "p99": float(np.percentile(latency, 99))}
    s.harness.append(entry)
    return entry


async def ceiling(s: Session, placement: str, n: int) -> float | None:
    """Requests a second the harness serves with ``n`` null instances of the layout, all
    requests due at once (None when the probe failed)."""
    entry = await serve_null(s, placement, n, FLOOD_QPS, CEILING_REQUESTS, "ceiling")
    if not entry["complete"] or entry.get("drain_timed_out"):
        return None
    return entry.get("achieved_qps")


async def at_rate(s: Session, placement: str, n: int, rate: float,
                  measured: dict[str, Any] | None) -> dict[str, Any]:
    """The harness's latency at ``rate`` beside ``measured`` (the real engine's latency
    figures there); a note when the harness's p50 is over ``SHARE_LIMIT`` of the measured
    p50 (the engine's own p50 is then smaller than the figure says)."""
    low, high = AT_RATE_REQUESTS
    count = int(min(max(rate * AT_RATE_S, low), high))
    entry = await serve_null(s, placement, n, rate, count, "at_rate")
    ours = (entry.get("latency_ms") or {}).get("p50")
    theirs = (measured or {}).get("p50")
    if ours is not None and theirs:
        entry["measured_p50_ms"] = theirs
        entry["share_of_measured_p50"] = ours / theirs
        note = share_note(entry["layout"], rate, ours, theirs)
        if note:
            s.note(note)
    return entry


def share_note(layout: str, rate: float, harness_p50_ms: float, measured_p50_ms: float
               ) -> str | None:
    """The warning when the harness's p50 is over ``SHARE_LIMIT`` of the measured p50."""
    if harness_p50_ms <= SHARE_LIMIT * measured_p50_ms:
        return None
    return (f"{layout} at {rate:g} qps: the harness alone takes {harness_p50_ms * 1000:.0f} "
            f"µs of the {measured_p50_ms * 1000:.0f} µs p50 "
            f"({100 * harness_p50_ms / measured_p50_ms:.0f}%, over {100 * SHARE_LIMIT:.0f}%): "
            "that p50 is partly the harness")
