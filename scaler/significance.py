"""Figures across repeats: a median with its 95% interval, and comparisons that say "~" when a
difference cannot be told from noise.

A figure is measured K times, each repeat in fresh worker processes. With K = 3..5, the
choices are made for small samples:

- The interval is Student's t-interval of the mean of the logarithms of the repeat values,
  mapped back (an interval of the geometric mean: rates are positive and their noise is
  multiplicative, so the interval never goes below zero). A bootstrap of 3 values has only
  10 distinct resamples and its percentile interval is about [min, max], far too narrow at
  95%; the t quantile (4.30 at K = 3, 2.78 at K = 5) widens honestly. The figure itself is
  the median (robust to one disturbed repeat); both are reported.
- A comparison B/A is Welch's t-test on the logarithms of the repeat values (ratios of
  throughput are multiplicative; Welch does not assume equal variances). Mann-Whitney U, the
  other candidate, cannot reach p < 0.05 with 3 repeats a side (its smallest two-sided p is
  0.1), so it could never call anything significant at the repeat counts people run. The
  ratio's interval is exp of Welch's interval of the difference of log means, so "the
  interval includes 1" and "not significant at 5%" are the same statement.
- With one repeat on a side there is no interval and no test: the ratio is shown, never as a
  finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scaler.special import stdtr, stdtrit

LEVEL = 0.95
UNSTABLE_CV = 0.05  # coefficient of variation across repeats above which a figure is unstable


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student's t-interval of the mean; None with fewer than 2 values."""
    k = len(values)
    if k < 2:
        return None
    mean = sum(values) / k
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    half = float(stdtrit(k - 1, 0.5 + level / 2)) * sd / math.sqrt(k)
    return (mean - half, mean + half)


def log_t_interval(values: Sequence[float], level: float = LEVEL
                   ) -> tuple[float, float] | None:
    """The t-interval of the mean of log values, mapped back: an interval of the geometric
    mean of positive values; None with fewer than 2 values."""
    interval = t_interval([math.log(v) for v in values], level)
    return None if interval is None else (math.exp(interval[0]), math.exp(interval[1]))


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample sd over mean); None with fewer than 2 values."""
    k = len(values)
    if k < 2:
        return None
    mean = sum(values) / k
    if mean == 0:
        return None
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) / abs(mean)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    k = len(ordered)
    mid = k // 2
    return ordered[mid] if k % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def across_repeats(values: Sequence[float | None]) -> dict[str, Any]:
    """The median of the repeat values, min, max, the 95% interval of their geometric mean
    (None with one repeat), the coefficient of variation and whether it exceeds
    ``UNSTABLE_CV``."""
    got = [float(v) for v in values if v is not None]
    if not got:
        return {"median": None, "min": None, "max": None, "ci95": None, "repeats": [],
                "cv": None, "unstable": False}
    interval = log_t_interval(got) if min(got) > 0 else t_interval(got)
    spread = cv(got)
    return {"median": median(got), "min": min(got), "max": max(got),
            "ci95": list(interval) if interval else None, "repeats": got,
            "cv": spread, "unstable": spread is not None and spread > UNSTABLE_CV}


def compare(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """B over A: the ratio of geometric means with Welch's interval and p-value (the ratio of
    the single values when a side has one repeat); ``significant`` only when the interval
    excludes 1. Non-positive values (a failed measurement) cannot be compared."""
    a = [float(v) for v in a if v is not None]
    b = [float(v) for v in b if v is not None]
    out: dict[str, Any] = {"ratio": None, "ci95": None, "p_value": None, "significant": False,
                           "repeats": [len(a), len(b)], "test": "welch_t_log"}
    if not a or not b or min(a + b) <= 0:
        out["note"] = "no positive values to compare"
        return out
    out["ratio"] = median(b) / median(a)
    if len(a) < 2 or len(b) < 2:
        out["note"] = "one repeat on a side: no interval, no test"
        return out
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    ma, mb = sum(la) / len(la), sum(lb) / len(lb)
    va = sum((v - ma) ** 2 for v in la) / (len(la) - 1) / len(la)
    vb = sum((v - mb) ** 2 for v in lb) / (len(lb) - 1) / len(lb)
    diff = mb - ma
    se = math.sqrt(va + vb)
    if se == 0:  # identical repeats on both sides: exact
        out.update(ratio=math.exp(diff), ci95=[math.exp(diff)] * 2,
                   p_value=0.0 if diff else 1.0, significant=diff != 0)
        return out
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    q = float(stdtrit(df, 0.5 + level / 2))
    p = float(2 * stdtr(df, -abs(diff) / se))
    low, high = math.exp(diff - q * se), math.exp(diff + q * se)
    out.update(ratio=math.exp(diff), ci95=[low, high], p_value=p,
               significant=not low <= 1.0 <= high, df=df)
    return out


def verdict(comparison: dict[str, Any]) -> str:
    """How a comparison reads in one cell: ``1.38x [1.21, 1.57]``, ``~ (1.02x [0.95, 1.09])``
    when not significant, or ``1.38x (1 repeat: no interval)``."""
    ratio = comparison.get("ratio")
    if ratio is None:
        return "-"
    interval = comparison.get("ci95")
    if interval is None:
        return f"{ratio:.2f}x (no interval: {comparison.get('note', 'one repeat')})"
    text = f"{ratio:.2f}x [{interval[0]:.2f}, {interval[1]:.2f}]"
    return text if comparison.get("significant") else f"~ ({text}: no measurable difference)"
