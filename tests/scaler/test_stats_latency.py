"""Latency summaries and sample-count warnings, pinned to hand-computed values.

Kept apart from test_stats.py, whose throughput tests change with the throughput rewrite.
"""

from __future__ import annotations

import numpy as np
import pytest

from scaler import stats

KEYS = ["mean", "p50", "p90", "p95", "p99", "p99.9", "min", "max", "std", "samples",
        "early_stopping"]


def test_latency_of_four_queries_by_hand():
    # a realistic monotonic clock: 1.7e18 ns is past float64's exact integers (spacing 256 ns),
    # so subtracting in floats would blur the nanoseconds below
    base = 1_700_000_000_123_456_789
    start = np.array([base, base + 10, base + 20, base + 30], dtype=np.int64)
    latency_ns = np.array([4_000_007, 1_000_001, 3_000_005, 2_000_003], dtype=np.int64)
    got = stats.latency_ms(start, start + latency_ns)
    assert list(got) == KEYS
    # sorted ms: 1.000001, 2.000003, 3.000005, 4.000007; linear interpolation between ranks
    assert got["samples"] == 4 and isinstance(got["samples"], int)
    # four queries prove no percentile at 99% confidence (even p50 needs 11)
    assert got["early_stopping"] == {"p50": None, "p90": None, "p99": None}
    assert got["mean"] == pytest.approx(2.500004, rel=1e-12)
    assert got["p50"] == pytest.approx(2.500004, rel=1e-12)  # rank 1.5
    assert got["p90"] == pytest.approx(3.000005 + 0.7 * 1.000002, rel=1e-12)  # rank 2.7
    assert got["p95"] == pytest.approx(3.000005 + 0.85 * 1.000002, rel=1e-12)  # rank 2.85
    assert got["p99"] == pytest.approx(3.000005 + 0.97 * 1.000002, rel=1e-12)  # rank 2.97
    assert got["p99.9"] == pytest.approx(3.000005 + 0.997 * 1.000002, rel=1e-12)
    assert (got["min"], got["max"]) == (pytest.approx(1.000001, rel=1e-12),
                                        pytest.approx(4.000007, rel=1e-12))
    # population standard deviation (ddof 0): sqrt(mean of squared deviations)
    deviations = np.array([-1.500003, -0.500001, 0.500001, 1.500003])
    assert got["std"] == pytest.approx(float(np.sqrt(np.mean(deviations**2))), rel=1e-9)
    assert all(type(v) is float for k, v in got.items() if k not in ("samples", "early_stopping"))


def test_unsigned_clock_arrays_keep_their_nanoseconds():
    base = 1_700_000_000_123_456_789
    start = np.array([base, base + 10], dtype=np.uint64)
    end = start + np.array([1_000_001, 2_000_003], dtype=np.uint64)
    got = stats.latency_ms(start, end)
    assert (got["min"], got["max"]) == (pytest.approx(1.000001, rel=1e-12),
                                        pytest.approx(2.000003, rel=1e-12))
    got = stats.latency_ms(start.astype(np.int64), end)
    assert got["max"] == pytest.approx(2.000003, rel=1e-12)
    got = stats.latency_ms(start, end.astype(np.int64))
    assert got["max"] == pytest.approx(2.000003, rel=1e-12)


def test_one_query_and_plain_lists():
    got = stats.latency_ms([5_000_000], [7_500_000])
    assert got["samples"] == 1
    assert got["mean"] == got["p50"] == got["p99.9"] == got["min"] == got["max"] == 2.5
    assert got["std"] == 0.0


def test_no_query_gives_only_the_count():
    empty = np.array([], dtype=np.int64)
    assert stats.latency_ms(empty, empty) == {"samples": 0}


@pytest.mark.parametrize(("samples", "warned"), [
    (0, ["p99", "p99.9"]),
    (661, ["p99", "p99.9"]),
    (662, ["p99.9"]),  # exactly at p99's early-stopping minimum: enough
    (6635, ["p99.9"]),
    (6636, []),
])
def test_sample_warnings_at_the_thresholds(samples, warned):
    got = stats.sample_warnings(samples)
    assert [w.split()[0] for w in got] == warned


def test_sample_warning_text():
    assert stats.sample_warnings(6000) == [
        "p99.9 from 6000 queries: fewer than the 6636 LoadGen's early stopping needs to bound "
        "it at 99% confidence"]
    assert stats.sample_warnings(99)[0] == (
        "p99 from 99 queries: fewer than the 662 LoadGen's early stopping needs to bound it "
        "at 99% confidence")


@pytest.mark.parametrize(("p", "name"), [(50.0, "p50"), (99.0, "p99"), (99.9, "p99.9"),
                                         (99.99, "p99.99"), (5, "p5")])
def test_pname(p, name):
    assert stats.pname(p) == name


# --- LoadGen's early-stopping estimate against the binomial distribution itself -------------
#
# References independent of the code: scipy.stats.binom (the binomial tail, not the beta
# function the code uses) and exact integer arithmetic on the binomial sum. The estimate for
# the p percentile is the smallest order statistic x_(k) that bounds it from above with 99%
# confidence, P(Bin(n, p) >= k) <= 1%, allowing at least one query over it (k <= n - 1).


def binomial_estimate(lat, p, confidence=0.99):
    """The early-stopping estimate by brute force over every order statistic."""
    from scipy.stats import binom

    n = len(lat)
    k = np.arange(1, n + 1)
    bounds = binom.sf(k - 1, n, p) <= 1 - confidence  # P(at least k of n under the quantile)
    if not bounds.any() or k[bounds][0] > n - 1:
        return None
    return float(np.sort(lat)[k[bounds][0] - 1])


def at_most_over_is_rare(t, n, p, confidence=0.99):
    """Exactly (integers only, p and the confidence taken as the binary fractions they are):
    P(at most t of n queries over L) <= 1 - confidence when each is under L with chance p."""
    from fractions import Fraction
    from math import comb

    p, risk = Fraction(p), 1 - Fraction(confidence)
    a, b = p.numerator, p.denominator
    total = sum(comb(n, x) * (b - a) ** x * a ** (n - x) for x in range(t + 1))
    return total * risk.denominator <= risk.numerator * b**n


@pytest.mark.parametrize(("p", "sizes"), [
    (0.5, range(1, 40)),  # p50 needs 11 queries
    (0.9, range(55, 100)),  # p90 needs 64; t = 1, 2, 3 change at 64, 81, 97
    (0.95, range(125, 160)),  # p95 needs 130
    (0.001, range(1, 8)),  # a low percentile: every query but one can be over the estimate
])
def test_early_stopping_estimate_is_the_binomial_bound(p, sizes):
    rng = np.random.default_rng(3)
    for n in sizes:
        lat = rng.permutation(n) * 0.25 + 1.0  # distinct latencies in random order
        assert stats.early_stopping_ms(lat, p) == binomial_estimate(lat, p), n


@pytest.mark.parametrize("t", [1, 2, 3])
def test_early_stopping_p99_at_exactly_the_threshold_of_t_queries_over(t):
    """n = min_passing(t) + t queries prove the p99 with t queries over it, one query fewer
    only with t - 1 (checked exactly, and against scipy's binomial)."""
    h = stats.min_passing(t, 0.99)
    assert at_most_over_is_rare(t, h + t, 0.99) and not at_most_over_is_rare(t, h + t - 1, 0.99)
    for n, over in ((h + t, t), (h + t - 1, t - 1)):
        lat = np.random.default_rng(n).permutation(n) + 1.0
        got = stats.early_stopping_ms(lat, 0.99)
        want = None if over == 0 else float(n - over)  # the (over + 1)-th largest of 1..n
        assert got == want == binomial_estimate(lat, 0.99)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("t", [0, 1, 2, 5])
def test_min_passing_is_the_least_h_with_rare_enough_odds(p, t):
    h = stats.min_passing(t, p)
    assert at_most_over_is_rare(t, h + t, p)
    assert h == 1 or not at_most_over_is_rare(t, h - 1 + t, p)


def test_min_passing_with_tolerance_and_confidence():
    # tolerance d: the odds are taken at p - d (LoadGen: q = p - d), so fewer queries suffice
    h = stats.min_passing(1, 0.9, tolerance=0.02)
    assert at_most_over_is_rare(1, h + 1, 0.88) and not at_most_over_is_rare(1, h, 0.88)
    assert h < stats.min_passing(1, 0.9)
    h = stats.min_passing(2, 0.9, confidence=0.95)
    assert at_most_over_is_rare(2, h + 2, 0.9, 0.95)
    assert not at_most_over_is_rare(2, h + 1, 0.9, 0.95)
    assert stats.early_stopping_min_queries(0.9, 0.95) == stats.min_passing(1, 0.9, 0.95) + 1
    assert stats.early_stopping_min_queries(0.9, 0.95) < 64
    # smallest answers: one query is enough when p^1 <= 1% already
    assert stats.min_passing(0, 0.01) == 1 and stats.min_passing(1, 0.001) == 1


def test_min_passing_at_odds_exactly_equal_to_the_risk():
    """Binary fractions make the odds hit 1 - confidence exactly: odds <= risk passes
    (LoadGen's comment says <=; its code uses <, which differs only at such exact ties)."""
    # t = 0: odds(h) = 0.5^h; risk 0.25 is reached exactly at h = 2
    assert stats.min_passing(0, 0.5, confidence=0.75) == 2
    # t = 1: odds(h) = (h + 2) / 2^(h + 1); 5/16 exactly at h = 3
    assert stats.min_passing(1, 0.5, confidence=1 - 5 / 16) == 3


def test_early_stopping_with_another_confidence():
    lat = np.arange(1.0, 101.0)
    got = stats.early_stopping_ms(lat, 0.9, confidence=0.95)
    assert got == binomial_estimate(lat, 0.9, confidence=0.95)
    assert got < stats.early_stopping_ms(lat, 0.9)  # less confidence, a lower bound
    few = np.arange(1.0, 64.0)  # 63 queries: too few at 99%, enough at 95%
    assert stats.early_stopping_ms(few, 0.9) is None
    assert stats.early_stopping_ms(few, 0.9, confidence=0.95) == binomial_estimate(
        few, 0.9, confidence=0.95)


def test_latency_summary_carries_the_three_conservative_percentiles():
    lat = np.random.default_rng(5).permutation(1000) * 0.01 + 2.0
    got = stats.latency_summary(lat)["early_stopping"]
    assert list(got) == ["p50", "p90", "p99"]
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert got[name] == binomial_estimate(lat, p), name


def test_float32_latencies_are_summarized_in_double_precision():
    # 2^24 + 1 is not a float32: summing in float32 would give a mean of 2^23, not 2^23 + 0.5
    lat = np.array([2.0**24, 1.0], dtype=np.float32)
    got = stats.latency_summary(lat)
    assert got["mean"] == 2.0**23 + 0.5 and got["p50"] == 2.0**23 + 0.5


def test_the_warning_thresholds_are_the_early_stopping_minimums():
    # consistency: the constants against the computation (662 is LoadGen's published count)
    assert stats.MIN_SAMPLES == {99.0: 662, 99.9: 6636}
    for p, n in stats.MIN_SAMPLES.items():
        assert stats.early_stopping_min_queries(p / 100) == n
    assert stats.EARLY_STOPPING_CONFIDENCE == 0.99


def test_sample_warnings_are_told_from_other_warnings():
    """A point over several repeats recomputes these (they depend on the pooled count)."""
    warnings = stats.sample_warnings(700)  # enough for p99 (662), not for p99.9 (6636)
    assert warnings == ["p99.9 from 700 queries: fewer than the 6636 LoadGen's early stopping "
                        "needs to bound it at 99% confidence"]
    assert stats.is_sample_warning(warnings[0])
    assert not stats.is_sample_warning("instance 0 stalled")
    assert stats.sample_warnings(7000) == []
