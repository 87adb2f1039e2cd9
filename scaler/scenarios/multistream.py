"""Multistream: the largest batch whose latency (at the chosen statistic) stays under a bound.

Layouts, per placement: one instance over the whole machine (of ``--cores-per-instance``
cores when given), then N instances for each N of ``--instances`` above 1 that fits the
cores (unpinned placements: one instance). Batch sizes
are searched by doubling from 1 (and ``--max-batch`` itself when doubling would jump past
it), then bisecting between the last batch that met the bound and the first that did not.

A probe decides on the conservative percentile (LoadGen's early-stopping estimate at 99%
confidence): it runs until it has the queries that estimate needs (662 for p99, 64 for p90)
and ends early, failed, once more queries are over the bound than that count could allow.
With ``--repeat K`` each probe is measured K times in fresh workers (a search cannot
interleave: each step depends on the last) and decided on the queries of all its repeats.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from scaler import points, stats
from scaler.scenarios.styles import layouts as placement_styles
from scaler.threadstyles import series_name

if TYPE_CHECKING:
    from scaler.coordinator import RunRules
    from scaler.session import Session

PERCENTILE = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


async def run(s: Session) -> None:
    """Every placement: one instance, then N instances for each N of ``--instances`` that
    fits the cores (a placement of unpinned instances measures one instance only: N of them
    would share the whole machine, the scaling test's business)."""
    s.reporter.plan(None)  # a search: its length depends on what it finds
    cores = len(s.topology.usable_cores)
    size = s.settings.cores_per_instance or 1
    dropped = [n for n in s.settings.instances if n * size > cores]
    if dropped:
        s.note(f"multistream left out N={','.join(map(str, dropped))}: more cores than the "
               f"{cores} usable ones (a latency bound is not searched on an oversubscribed "
               "layout; scaling measures those)")
    for placement, style in placement_styles(s):
        layouts = sorted({1, *(n for n in s.settings.instances if 1 < n and n * size <= cores)})
        if s.placement(placement).plan(s.topology, 1).instances[0].cpus is None:
            layouts = [1]
        for n in layouts:
            await search_batch(s, placement, n, style)
            if s.stopped:
                return


def batches_to_probe(passed: int, failed: int | None, cap: int) -> int | None:
    """The next batch of the search after the last passing and first failing batch: double
    (capped at ``cap``) until one fails, then bisect; None when the search is over."""
    if failed is None:
        if passed >= cap:
            return None
        return 1 if passed == 0 else min(passed * 2, cap)
    if failed - passed <= 1:
        return None
    return (passed + failed) // 2


async def search_batch(s: Session, placement: str, n: int, style: str = "tuned") -> None:
    bound, stat, cap = s.settings.latency_bound_ms, s.settings.stat.value, s.settings.max_batch
    layout = f"{series_name(placement, style, s.settings.threading)} x{n}"
    rules = probe_rules(s, stat, bound)
    good, bad = 0, None
    while not s.stopped and (batch := batches_to_probe(good, bad, cap)) is not None:
        if await probe(s, placement, n, batch, layout, rules, stat, bound, style):
            good = batch
        else:
            bad = batch


def probe_rules(s: Session, stat: str, bound: float) -> RunRules:
    """The run rules of a probe: enough queries for the conservative estimate of ``stat``,
    and an early end once the bound cannot be met."""
    p = PERCENTILE.get(stat)
    if p is None:  # the mean: no percentile to prove
        return replace(s.rules, latency_bound_ms=None, bound_percentile=None)
    need = stats.early_stopping_min_queries(p)
    return replace(s.rules, min_queries=max(s.rules.min_queries, need), latency_bound_ms=bound,
                   bound_percentile=p)


async def probe(s: Session, placement: str, n: int, batch: int, layout: str, rules: RunRules,
                stat: str, bound: float, style: str = "tuned") -> bool:
    """Measure one batch size (every repeat) and decide it on the pooled queries."""
    records = []
    for r in range(s.settings.repeat):
        if s.stopped:
            return False
        if r:
            await s.fresh_workers()
        records.append(await s.group(placement, n, batch, label=f"{layout} batch {batch}",
                                     repeat=r, rules=rules, layout=layout, probe=True,
                                     threading=style))
    if any(rec["status"] != "complete" or rec.get("bound_failed") for rec in records):
        return False
    value = points.decision_latency(s.point(records[-1])["latency_ms"], stat)
    return value is not None and value <= bound
