"""Server: open-loop arrivals (MLPerf LoadGen's Server scenario) on every layout.

Requests arrive as a Poisson process at a target rate over all instances and queue when the
instances are busy (``scaler.serving``); a request's latency counts from its scheduled
arrival. A run at one rate reports what the layout does under that load; ``--find-peak``
searches the highest rate whose conservative latency (LoadGen's early-stopping estimate at
the chosen statistic) stays under the bound: the rate doubles from ``--target-qps`` until a
probe fails, then the bracket is bisected until it is narrower than ``--peak-precision``.
A probe fails as soon as more requests are over the bound than it could allow. With
``--repeat K`` every probe is measured K times in fresh workers and decided on all of them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from scaler import points, stats
from scaler.serving import ServePolicy
from scaler.threadstyles import series_name

if TYPE_CHECKING:
    from scaler.coordinator import RunRules
    from scaler.session import Session

PERCENTILE = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


def policy_of(s: Session) -> ServePolicy:
    batch = s.settings.batch
    return ServePolicy(batch=batch, max_batch=max(batch, s.settings.serve_max_batch or batch),
                       batch_timeout_s=s.settings.batch_timeout_ms / 1000.0)


def probe_rules(s: Session) -> RunRules:
    p = PERCENTILE.get(s.settings.stat.value)
    return replace(s.rules, latency_bound_ms=s.settings.latency_bound_ms if p else None,
                   bound_percentile=p, min_queries=requests_needed(s, 0.0))


def requests_needed(s: Session, rate_qps: float) -> int:
    """Requests of a probe under the session's rules (see ``request_count``)."""
    return request_count(s.settings.stat.value, rate_qps, s.rules.min_queries,
                         s.rules.min_duration_s)


def request_count(stat: str, rate_qps: float, min_queries: int, min_duration_s: float) -> int:
    """Requests of a probe: the run rules (min duration at this rate, min queries) and at
    least what the early-stopping estimate of the statistic needs (the simulated server,
    ``scaler.simulate.serve``, sizes its probes with this too)."""
    p = PERCENTILE.get(stat)
    need = stats.early_stopping_min_queries(p) if p else 1
    return max(min_queries, need, math.ceil(rate_qps * min_duration_s))


async def run(s: Session) -> None:
    cores = len(s.topology.usable_cores)
    layouts = [(placement, n, style) for placement in s.settings.placements
               for style in s.settings.threading for n in s.settings.instances]
    s.reporter.plan(None if s.settings.find_peak else len(layouts) * s.settings.repeat)
    if any(n > cores for _, n, _ in layouts):
        s.note(f"server layouts with more instances than the {cores} cores are oversubscribed")
    if not s.settings.find_peak:
        for r in range(s.settings.repeat):
            await s.fresh_workers()
            for placement, n, style in layouts:
                if s.stopped:
                    return
                await measure(s, placement, n, s.settings.target_qps, r, style=style)
        return
    for placement, n, style in layouts:
        if s.stopped:
            return
        await find_peak(s, placement, n, style)


async def measure(s: Session, placement: str, n: int, rate: float, repeat: int,
                  style: str = "tuned", **extra: object) -> dict:
    rules = probe_rules(s)
    count = requests_needed(s, rate)
    return await s.serve(placement, n, rate, count, policy_of(s), repeat=repeat,
                         rules=replace(rules, min_queries=count), threading=style,
                         series=series_name(placement, style, s.settings.threading), **extra)


async def probe(s: Session, placement: str, n: int, rate: float, style: str = "tuned") -> bool:
    """One rate, every repeat; it passes if every repeat was valid and the pooled
    conservative latency meets the bound."""
    record = None
    for r in range(s.settings.repeat):
        if s.stopped:
            return False
        if r:
            await s.fresh_workers()  # each repeat in new processes
        record = await measure(s, placement, n, rate, r, style, probe=True,
                               layout=f"{series_name(placement, style, s.settings.threading)}"
                               f" x{n}")
        if record["status"] != "complete" or record.get("bound_failed") or not record.get(
                "valid"):
            return False
    assert record is not None
    value = points.decision_latency(s.point(record)["latency_ms"], s.settings.stat.value)
    return value is not None and value <= s.settings.latency_bound_ms


def next_rate(passed: float, failed: float | None, start: float, precision: float,
              floor: float) -> float | None:
    """The next rate of the search: from ``start``, double while rates pass and halve while
    they fail, until one of each brackets the peak; then bisect until the bracket is
    narrower than ``precision`` (relative). None when the search is over, or when no rate
    down to ``floor`` passes."""
    if failed is None:
        return start if passed == 0 else passed * 2
    if passed == 0:
        lower = failed / 2
        return lower if lower >= floor else None
    if (failed - passed) / passed <= precision:
        return None
    return round((passed + failed) / 2, 6)


class PeakSearch:
    """The search of ``--find-peak`` (``next_rate`` from ``start``, stopping below
    ``start / 64``) as a state that a caller drives: ``next()`` gives the rate to probe
    (rounded to 1/1000 qps; None when the search is over), ``record(passed)`` its verdict.
    The measured search and the simulated one (``scaler.simulate.serve``) both drive it."""

    def __init__(self, start: float, precision: float) -> None:
        self.start, self.precision, self.floor = start, precision, start / 64
        self.good: float = 0.0
        self.bad: float | None = None
        self._rate: float | None = None

    def next(self) -> float | None:
        self._rate = next_rate(self.good, self.bad, self.start, self.precision, self.floor)
        return round(self._rate, 3) if self._rate else None

    def record(self, passed: bool) -> None:
        assert self._rate is not None, "record() follows next()"
        if passed:
            self.good = self._rate
        else:
            self.bad = self._rate


async def find_peak(s: Session, placement: str, n: int, style: str = "tuned") -> None:
    """Start where the user said (--target-qps), else at half of what the layout serves in a
    closed loop (measured first, briefly: an open queue cannot keep up beyond it)."""
    start = s.settings.target_qps if s.settings.target_qps_given else None
    if start is None:
        capacity = await closed_loop_capacity(s, placement, n, style)
        if capacity is None:
            return
        start = capacity / 2
    search = PeakSearch(start, s.settings.peak_precision)
    while not s.stopped and (rate := search.next()) is not None:
        search.record(await probe(s, placement, n, rate, style))


async def closed_loop_capacity(s: Session, placement: str, n: int, style: str = "tuned"
                               ) -> float | None:
    """Requests a second the layout serves back to back (a short closed-loop group, recorded
    and labelled as the search's calibration)."""
    rules = replace(s.rules, min_duration_s=min(s.rules.min_duration_s, 2.0), min_queries=20,
                    latency_bound_ms=None, bound_percentile=None)
    name = series_name(placement, style, s.settings.threading)
    record = await s.group(placement, n, policy_of(s).max_batch, rules=rules, threading=style,
                           label=f"{name} x{n} closed-loop capacity (calibrates the "
                           "search)", calibration=True, series=f"{name} capacity")
    if record["status"] != "complete" or not record.get("throughput_ips"):
        return None
    return float(record["throughput_ips"])
