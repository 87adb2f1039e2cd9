"""Intervals across repeats and B/A comparisons, checked against scipy's own tests.

scipy is an independent implementation here (``ttest_ind(equal_var=False)`` on the logs, and
``t.interval``), so these tests check correctness, not only consistency.
"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from scaler import significance


def test_t_interval_matches_scipy_for_three_and_five_repeats():
    for values in ([10.0, 11.0, 12.5], [20.1, 19.7, 20.4, 20.0, 19.9]):
        k = len(values)
        mean = sum(values) / k
        want = stats.t.interval(0.95, k - 1, loc=mean, scale=stats.sem(values))
        got = significance.t_interval(values)
        assert got == pytest.approx(want, rel=1e-12)
    assert significance.t_interval([5.0]) is None


def test_the_interval_of_positive_rates_is_geometric_and_never_negative():
    values = [100.0, 20.0]  # two wildly different repeats: a linear interval goes below 0
    assert significance.t_interval(values)[0] < 0
    low, high = significance.across_repeats(values)["ci95"]
    logs = [math.log(v) for v in values]
    want = stats.t.interval(0.95, 1, loc=sum(logs) / 2, scale=stats.sem(logs))
    assert (low, high) == pytest.approx((math.exp(want[0]), math.exp(want[1])))
    assert 0 < low < math.sqrt(100 * 20) < high


def test_across_repeats_reports_the_median_and_flags_spread():
    r = significance.across_repeats([100.0, 90.0, 130.0])
    assert r["median"] == 100.0 and r["min"] == 90.0 and r["max"] == 130.0
    assert r["ci95"][0] < 100.0 < r["ci95"][1]
    assert r["cv"] == pytest.approx(stats.variation([100, 90, 130], ddof=1))
    assert r["unstable"] is True
    steady = significance.across_repeats([100.0, 100.5, 99.8])
    assert steady["unstable"] is False  # cv 0.36% < 5%
    one = significance.across_repeats([42.0])
    assert one["ci95"] is None and one["median"] == 42.0 and one["unstable"] is False
    assert significance.across_repeats([None])["median"] is None


def test_welch_on_logs_matches_scipy():
    a, b = [20.0, 21.0, 19.5, 20.4], [23.0, 24.1, 22.8]
    got = significance.compare(a, b)
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    test = stats.ttest_ind(lb, la, equal_var=False)
    assert got["p_value"] == pytest.approx(test.pvalue, rel=1e-9)
    low, high = test.confidence_interval(0.95)
    assert got["ci95"] == pytest.approx([math.exp(low), math.exp(high)], rel=1e-9)
    assert got["ratio"] == pytest.approx(math.exp(sum(lb) / 3 - sum(la) / 4))
    assert got["significant"] is True and got["ci95"][0] > 1.0


def test_a_difference_within_the_noise_is_not_significant():
    got = significance.compare([20.0, 23.0, 19.0], [21.0, 20.0, 22.5])
    assert got["significant"] is False and got["ci95"][0] < 1.0 < got["ci95"][1]
    assert significance.verdict(got).startswith("~ (")
    assert "no measurable difference" in significance.verdict(got)


def test_one_repeat_gives_a_ratio_but_never_a_finding():
    got = significance.compare([20.0], [30.0, 31.0])
    assert got["ratio"] == pytest.approx(30.5 / 20.0)
    assert got["ci95"] is None and got["significant"] is False
    assert "no interval" in significance.verdict(got)


def test_identical_runs_are_not_different():
    values = [10.0, 11.0, 12.0]
    got = significance.compare(values, values)
    assert got["ratio"] == pytest.approx(1.0) and got["significant"] is False
    assert got["p_value"] == pytest.approx(1.0)


def test_failed_values_cannot_be_compared():
    assert significance.compare([0.0, 1.0], [1.0, 2.0])["ratio"] is None
