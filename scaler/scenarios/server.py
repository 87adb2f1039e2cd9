"""Server: open-loop arrivals (MLPerf LoadGen's Server scenario) on every layout.

Requests arrive as a Poisson process at a target rate over all instances and queue when the
instances are busy (``scaler.serving``); a request's latency counts from its scheduled
arrival. A run at one rate reports what the layout does under that load; ``--find-peak``
searches the highest rate whose conservative latency (LoadGen's early-stopping estimate at
the chosen statistic) stays under the bound: the rate doubles from ``--target-qps`` until a
probe fails (halves until one passes), then the bracket is bisected until it is narrower
than ``--peak-precision``.
Without ``--target-qps`` the search starts at the smaller of the layout's closed-loop rate
and what the harness carries (``scenarios.harness``), brackets (halving down to one request
per bound-length, doubling up), then bisects; it always answers, with the lowest rate's
latency when no rate meets the bound. A probe fails as soon as more requests are over the
bound than it could allow. With ``--repeat K`` every probe is measured K times in fresh
workers and decided on all of them. The harness's own latency at the peak (or the target
rate) is measured with null instances in the same run and set beside the measured p50.
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
    from scaler.scenarios import harness

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
                record = await measure(s, placement, n, s.settings.target_qps, r, style=style)
                if r == 0 and s.spec.engine != "null" and not s.stopped:
                    await harness.at_rate(s, placement, n, s.settings.target_qps,
                                          record.get("latency_ms"))
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


async def probe(s: Session, placement: str, n: int, rate: float, style: str = "tuned"
                ) -> tuple[bool, float | None, dict | None]:
    """One rate, every repeat; it passes if every repeat was valid and the pooled
    conservative latency meets the bound. Returns the verdict, the latency it was decided
    on (the conservative estimate at the statistic, else the plain figure of what was
    served) and the point's latency figures."""
    record = None
    for r in range(s.settings.repeat):
        if s.stopped:
            return False, None, None
        if r:
            await s.fresh_workers()  # each repeat in new processes
        record = await measure(s, placement, n, rate, r, style, probe=True,
                               layout=f"{series_name(placement, style, s.settings.threading)}"
                               f" x{n}")
        if record["status"] != "complete" or record.get("bound_failed") or not record.get(
                "valid"):
            lat = record.get("latency_ms") or {}
            return False, lat.get(s.settings.stat.value), lat
    assert record is not None
    lat = s.point(record)["latency_ms"]
    value = points.decision_latency(lat, s.settings.stat.value)
    return value is not None and value <= s.settings.latency_bound_ms, value, lat


def next_rate(passed: float, failed: float | None, start: float, precision: float,
              floor: float) -> float | None:
    """The next rate of the search: from ``start``, double while rates pass and halve while
    they fail, until one of each brackets the peak; then bisect until the bracket is
    narrower than ``precision`` (relative). Halving stops at ``floor`` (probed itself when
    the halves step over it); None when the search is over, or when ``floor`` failed too."""
    if failed is None:
        return start if passed == 0 else passed * 2
    if passed == 0:
        if failed <= floor:
            return None
        return max(failed / 2, floor)
    if (failed - passed) / passed <= precision:
        return None
    return round((passed + failed) / 2, 6)


def floor_qps(latency_bound_ms: float | None) -> float:
    """The lowest rate a search tries: one request per bound-length (below it requests
    rarely meet each other, and a layout that misses the bound there misses it alone)."""
    return 1000.0 / latency_bound_ms if latency_bound_ms else 1.0


class PeakSearch:
    """The search of ``--find-peak`` as a state that a caller drives: ``next()`` gives the
    rate to probe (rounded to 1/1000 qps; None when the search is over), ``record(passed,
    latency_ms)`` its verdict and the latency it was decided on. It brackets first (down
    by halves to ``floor``, up by doubling), then bisects to ``precision``; it always
    answers (``answer()``): the peak and the first failing rate above it, or that no rate
    down to the floor met the bound, with the lowest rate's latency. ``max_probes`` bounds
    a search whose rates never fail (a generator that is never the limit). The measured
    search and the simulated one (``scaler.simulate.serve``) both drive it."""

    def __init__(self, start: float, precision: float, floor: float = 0.0,
                 max_probes: int = 64) -> None:
        self.start, self.precision = start, precision
        self.floor = min(floor, start) if floor > 0 else start / 64
        self.max_probes = max_probes
        self.good: float = 0.0
        self.bad: float | None = None
        self.probes: list[dict[str, float | bool | None]] = []
        self._rate: float | None = None

    def next(self) -> float | None:
        if len(self.probes) >= self.max_probes:
            return None
        self._rate = next_rate(self.good, self.bad, self.start, self.precision, self.floor)
        return round(self._rate, 3) if self._rate else None

    def record(self, passed: bool, latency_ms: float | None = None) -> None:
        assert self._rate is not None, "record() follows next()"
        self.probes.append({"rate_qps": round(self._rate, 3), "passed": passed,
                            "latency_ms": latency_ms})
        if passed:
            self.good = self._rate
        else:
            self.bad = self._rate

    def answer(self) -> dict[str, object]:
        """What the search found: ``peak_qps`` (None: no rate down to ``floor_qps`` met
        the bound, ``lowest_qps`` and its ``lowest_latency_ms`` say how far it was), the
        first failing rate above the peak (None: none failed within ``max_probes``)."""
        out: dict[str, object] = {
            "peak_qps": round(self.good, 3) if self.good else None,
            "first_failing_qps": round(self.bad, 3) if self.bad else None,
            "floor_qps": round(self.floor, 3), "start_qps": round(self.start, 3),
            "probes": list(self.probes)}
        if not self.good and self.probes:
            lowest = min(self.probes, key=lambda p: p["rate_qps"])  # type: ignore[arg-type]
            out.update(lowest_qps=lowest["rate_qps"], lowest_latency_ms=lowest["latency_ms"])
        return out


async def find_peak(s: Session, placement: str, n: int, style: str = "tuned") -> None:
    """Start where the user said (--target-qps), else at the smaller of what the layout
    serves in a closed loop (measured first, briefly: an open queue cannot keep up beyond
    it) and what the harness carries (``harness.ceiling``); the search and its answer are
    kept in run.json (``searches``), and the harness's latency at the peak beside it."""
    from scaler.scenarios import harness

    layout = f"{series_name(placement, style, s.settings.threading)} x{n}"
    start = s.settings.target_qps if s.settings.target_qps_given else None
    if start is None:
        capacity = await closed_loop_capacity(s, placement, n, style)
        if capacity is None or s.stopped:
            return
        carried = await harness.ceiling(s, placement, n)
        start = min(capacity, carried) if carried else capacity
    search = PeakSearch(start, s.settings.peak_precision, floor_qps(s.settings.latency_bound_ms))
    at: dict[float, dict | None] = {}
    while not s.stopped and (rate := search.next()) is not None:
        passed, value, at[rate] = await probe(s, placement, n, rate, style)
        search.record(passed, value)
    found = s.searches[layout] = search.answer()
    if s.stopped:
        return
    if found["peak_qps"] is None:
        low = found.get("lowest_latency_ms")
        s.note(f"{layout}: no rate down to {found['floor_qps']:g} qps (one request per "
               f"bound-length) meets the bound; at {found.get('lowest_qps'):g} qps the "
               f"{s.settings.stat.value} was " + (f"{low:.3g} ms" if low is not None else
                                                  "not measured"))
    elif s.spec.engine != "null":
        peak = float(found["peak_qps"])  # type: ignore[arg-type]
        found["harness"] = await harness.at_rate(s, placement, n, peak, at.get(peak))


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
