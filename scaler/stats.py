"""Summary statistics over raw samples: latency percentiles, LoadGen's early-stopping estimate
and throughput over the common window."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from scaler.special import betainc

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
EARLY_STOPPING_CONFIDENCE = 0.99  # LoadGen's
EARLY_STOPPING_PERCENTILES = (50.0, 90.0, 99.0)  # the statistics a decision may use


@functools.lru_cache(maxsize=65536)
def min_passing(t: int, p: float, confidence: float = EARLY_STOPPING_CONFIDENCE,
                tolerance: float = 0.0) -> int:
    """LoadGen's ``MinPassingQueriesFinder``: the fewest queries under a latency L, next to
    ``t`` queries over it, for which "the ``p`` percentile is at most L" holds with
    ``confidence``: the least h with ``BetaRegularized(p - d; h, 1 + t) <= 1 - confidence``
    (the chance that h + t queries show at most t over-latency ones when a share of more than
    1 - p + d of all queries are over)."""
    q = p - tolerance
    lo, hi = 1, 2
    while betainc(hi, 1 + t, q) > 1 - confidence:  # grow an upper bound
        lo, hi = hi, hi * 2
    while lo < hi:  # least h passing: odds fall as h grows
        mid = (lo + hi) // 2
        if betainc(mid, 1 + t, q) > 1 - confidence:
            lo = mid + 1
        else:
            hi = mid
    return lo


def early_stopping_min_queries(p: float, confidence: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """Queries needed before the estimate exists: one over-latency query allowed (LoadGen
    asks for this many: 64 for p90, 662 for p99 at 99% confidence)."""
    return min_passing(1, p, confidence) + 1


def early_stopping_ms(lat_ms: np.ndarray, p: float,
                      confidence: float = EARLY_STOPPING_CONFIDENCE) -> float | None:
    """The conservative ``p`` percentile (LoadGen's early-stopping rule): the latency L of
    the largest number t of queries over L for which the n - t queries under it still prove,
    with ``confidence``, that the true ``p`` percentile is at most L. L is the (t+1)-th
    largest latency, exactly t queries over it: the distribution-free bound (LoadGen's
    results.cc prints the t-th largest, one rank less conservative). None when the sample is
    too small to prove anything (see ``early_stopping_min_queries``)."""
    n = int(lat_ms.size)
    if n < early_stopping_min_queries(p, confidence):
        return None
    # the largest t with n - t >= min_passing(t) (the left side falls in t), asked of the odds
    # directly: n - t >= min_passing(t) exactly when n - t queries under L already pass, as
    # the odds fall as h grows (min_passing's own search rests on it)
    lo, hi = 1, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if betainc(n - mid, 1 + mid, p) <= 1 - confidence:
            lo = mid
        else:
            hi = mid - 1
    return float(np.sort(lat_ms)[n - lo - 1])


# fewest samples for which a percentile means anything: LoadGen's early-stopping minimum
MIN_SAMPLES = {99.0: 662, 99.9: 6636}


def pname(p: float) -> str:
    return f"p{p:g}"


def latency_ms(start_ns: np.ndarray, end_ns: np.ndarray) -> dict[str, Any]:
    """Mean, percentiles, min, max and std of per-query latency, in milliseconds, and the
    early-stopping (conservative) p50, p90 and p99 where the sample is large enough."""
    lat = (np.asarray(end_ns, dtype=np.int64) - np.asarray(start_ns, dtype=np.int64)) / 1e6
    return latency_summary(lat)


def latency_summary(lat: np.ndarray) -> dict[str, Any]:
    """The summary of latencies already in milliseconds (see ``latency_ms``)."""
    lat = np.asarray(lat, dtype=float)
    if lat.size == 0:
        return {"samples": 0}
    out: dict[str, Any] = {"mean": float(lat.mean())}
    for p, v in zip(PERCENTILES, np.percentile(lat, PERCENTILES)):
        out[pname(p)] = float(v)
    out.update(min=float(lat.min()), max=float(lat.max()), std=float(lat.std()),
               samples=int(lat.size))
    out["early_stopping"] = {pname(p): early_stopping_ms(lat, p / 100.0)
                             for p in EARLY_STOPPING_PERCENTILES}
    return out


_SAMPLE_WARNING = " LoadGen's early stopping needs to bound it at 99% confidence"


def sample_warnings(samples: int) -> list[str]:
    return [f"{pname(p)} from {samples} queries: fewer than the {n}{_SAMPLE_WARNING}"
            for p, n in MIN_SAMPLES.items() if samples < n]


def is_sample_warning(warning: str) -> bool:
    """Whether ``warning`` is one of :func:`sample_warnings`' (it depends on the number of
    queries a figure pools, so a point over several repeats recomputes it)."""
    return warning.endswith(_SAMPLE_WARNING)


def common_window(starts: Sequence[np.ndarray], ends: Sequence[np.ndarray]) -> tuple[int, int]:
    """The span in which every instance was running: [latest first start, earliest last end]."""
    return max(int(s[0]) for s in starts), min(int(e[-1]) for e in ends)


def throughput_ips(starts: Sequence[np.ndarray], ends: Sequence[np.ndarray], batch: int,
                   shared_clock: bool) -> tuple[float, dict[str, Any]]:
    """Aggregate images/s of instances that ran together.

    With one clock (same host boot) the rate is the queries done inside the common window
    over its length, each query counted by the share of its duration inside the window (a
    batch of 1024 that straddles the window's edge counts for the part it spent in it), so
    start-up and stop skew between instances do not count. Otherwise (VMs, remote hosts:
    separate clocks) each instance's own rate is summed; when instances on one clock never
    ran at the same time, too, and ``fallback`` says so (a figure to flag, not to trust).
    """
    pairs = [(np.asarray(s, dtype=np.int64), np.asarray(e, dtype=np.int64))
             for s, e in zip(starts, ends) if len(s)]
    if not pairs or len(pairs) < len(starts):
        return 0.0, {"method": "none", "reason": "an instance completed no query"}
    how: dict[str, Any] = {"method": "sum_of_instances", "clocks": "separate"}
    if shared_clock:
        w0, w1 = common_window([p[0] for p in pairs], [p[1] for p in pairs])
        if w1 > w0:
            done = sum(float(np.sum(window_shares(s, e, w0, w1))) for s, e in pairs)
            span_s = (w1 - w0) / 1e9
            return done * batch / span_s, {"method": "common_window", "window_s": span_s,
                                           "queries_in_window": round(done, 3)}
        how = {"method": "sum_of_instances",
               "fallback": "the instances' run windows do not overlap"}
    rates = [len(s) * batch / max((e[-1] - s[0]) / 1e9, 1e-9) for s, e in pairs]
    how["window_s"] = max((e[-1] - s[0]) / 1e9 for s, e in pairs)
    return float(sum(rates)), how


def window_shares(start: np.ndarray, end: np.ndarray, w0: int, w1: int) -> np.ndarray:
    """Share of each query's duration inside [w0, w1]; a query of zero duration counts
    wholly if it ends inside the window."""
    dur = (end - start).astype(float)
    inside = (np.minimum(end, w1) - np.maximum(start, w0)).clip(min=0).astype(float)
    point = (dur <= 0) & (end > w0) & (end <= w1)
    return np.where(dur > 0, inside / np.where(dur > 0, dur, 1.0), point.astype(float))
