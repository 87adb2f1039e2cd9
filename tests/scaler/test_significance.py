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


# --- exact results and boundaries -----------------------------------------------------------


def test_intervals_at_another_level_match_scipy():
    values = [10.0, 11.0, 12.5, 11.5]
    mean = sum(values) / 4
    want = stats.t.interval(0.9, 3, loc=mean, scale=stats.sem(values))
    assert significance.t_interval(values, 0.9) == pytest.approx(want, rel=1e-12)
    logs = [math.log(v) for v in values]
    want = stats.t.interval(0.9, 3, loc=sum(logs) / 4, scale=stats.sem(logs))
    got = significance.log_t_interval(values, 0.9)
    assert got == pytest.approx((math.exp(want[0]), math.exp(want[1])), rel=1e-12)
    assert significance.log_t_interval([7.0]) is None


@pytest.mark.parametrize("values", [[4.0], [3.0, 1.0], [5.0, 1.0, 3.0], [4.0, 1.0, 3.0, 2.0],
                                    [9.0, 1.0, 7.0, 3.0, 5.0], [6.0, 2.0, 5.0, 1.0, 4.0, 3.0]])
def test_median_matches_the_standard_library(values):
    import statistics

    assert significance.median(values) == statistics.median(values)


def test_cv_is_the_sample_sd_over_the_mean():
    assert significance.cv([0.5, 1.5]) == pytest.approx(stats.variation([0.5, 1.5], ddof=1),
                                                       rel=1e-12)  # two repeats, mean 1
    assert significance.cv([-2.0, -4.0]) == pytest.approx(math.sqrt(2) / 3, rel=1e-12)
    assert significance.cv([-1.0, 1.0]) is None  # mean 0: no relative spread
    assert significance.cv([3.0]) is None
    assert significance.cv([19.0, 20.0, 21.0]) == 0.05  # sd 1 over mean 20, exactly


def test_a_cv_of_exactly_five_percent_is_not_unstable():
    assert significance.across_repeats([19.0, 20.0, 21.0])["unstable"] is False
    assert significance.across_repeats([18.9, 20.0, 21.1])["unstable"] is True


def test_across_repeats_of_nothing_and_of_one():
    empty = {"median": None, "min": None, "max": None, "ci95": None, "repeats": [],
             "cv": None, "unstable": False}
    assert significance.across_repeats([]) == empty
    assert significance.across_repeats([None, None]) == empty
    assert significance.across_repeats([None, 5]) == {
        "median": 5.0, "min": 5.0, "max": 5.0, "ci95": None, "repeats": [5.0], "cv": None,
        "unstable": False}


def test_across_repeats_of_rates_below_one_is_still_geometric():
    values = [0.5, 0.8]
    logs = [math.log(v) for v in values]
    want = stats.t.interval(0.95, 1, loc=sum(logs) / 2, scale=stats.sem(logs))
    got = significance.across_repeats(values)
    assert got["ci95"] == pytest.approx([math.exp(want[0]), math.exp(want[1])], rel=1e-12)


def test_across_repeats_with_a_zero_falls_back_to_the_linear_interval():
    values = [0.0, 2.0, 4.0]
    got = significance.across_repeats(values)
    want = stats.t.interval(0.95, 2, loc=2.0, scale=stats.sem(values))
    assert got["ci95"] == pytest.approx(list(want), rel=1e-12)
    assert (got["median"], got["min"], got["max"]) == (2.0, 0.0, 4.0)
    assert got["cv"] == 1.0 and got["unstable"] is True
    got = significance.across_repeats([-1.0, 1.0])  # mean 0: no cv
    assert got["cv"] is None and got["unstable"] is False and got["ci95"][0] < 0


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on [10, 10]
def test_welch_with_two_repeats_a_side_and_rates_below_one_matches_scipy():
    for a, b in (([0.5, 0.6], [0.7, 0.8]), ([0.52, 0.55, 0.5], [0.61, 0.66]),
                 ([10.0, 10.0], [11.0, 12.5])):  # one side without spread: df = 1
        got = significance.compare(a, b)
        la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
        test = stats.ttest_ind(lb, la, equal_var=False)
        assert got["p_value"] == pytest.approx(test.pvalue, rel=1e-9)
        assert got["df"] == pytest.approx(test.df, rel=1e-12)
        low, high = test.confidence_interval(0.95)
        assert got["ci95"] == pytest.approx([math.exp(low), math.exp(high)], rel=1e-9)
        assert got["repeats"] == [len(a), len(b)] and got["test"] == "welch_t_log"
        assert got["significant"] is (not got["ci95"][0] <= 1.0 <= got["ci95"][1])


def test_welch_at_another_level_matches_scipy():
    a, b = [20.0, 21.0, 19.5, 20.4], [23.0, 24.1, 22.8]
    got = significance.compare(a, b, level=0.99)
    test = stats.ttest_ind([math.log(v) for v in b], [math.log(v) for v in a], equal_var=False)
    low, high = test.confidence_interval(0.99)
    assert got["ci95"] == pytest.approx([math.exp(low), math.exp(high)], rel=1e-9)


def test_identical_repeats_on_each_side_are_exact():
    got = significance.compare([10.0, 10.0], [10.0, 10.0])
    assert got == {"ratio": 1.0, "ci95": [1.0, 1.0], "p_value": 1.0, "significant": False,
                   "repeats": [2, 2], "test": "welch_t_log"}
    got = significance.compare([10.0, 10.0, 10.0], [12.0, 12.0, 12.0])
    assert got["ratio"] == pytest.approx(1.2, rel=1e-12)
    assert got["ci95"] == [got["ratio"], got["ratio"]]
    assert got["p_value"] == 0.0 and got["significant"] is True


def test_what_cannot_be_compared_says_why():
    base = {"ratio": None, "ci95": None, "p_value": None, "significant": False,
            "test": "welch_t_log", "note": "no positive values to compare"}
    assert significance.compare([], [1.0, 2.0]) == {**base, "repeats": [0, 2]}
    assert significance.compare([1.0, 2.0], []) == {**base, "repeats": [2, 0]}
    assert significance.compare([1.0, -2.0], [1.0, 2.0]) == {**base, "repeats": [2, 2]}
    assert significance.compare([None, 1.0], [None]) == {**base, "repeats": [1, 0]}
    one = {"ci95": None, "p_value": None, "significant": False, "test": "welch_t_log",
           "note": "one repeat on a side: no interval, no test"}
    assert significance.compare([20.0], [30.0, 31.0, 29.0]) == {**one, "ratio": 1.5,
                                                               "repeats": [1, 3]}
    assert significance.compare([20.0, 10.0, 30.0], [30.0]) == {**one, "ratio": 1.5,
                                                               "repeats": [3, 1]}


def test_verdicts_read_as_one_cell():
    assert significance.verdict({"ratio": None}) == "-"
    assert significance.verdict({"ratio": 1.5, "ci95": None, "note": "why"}) == (
        "1.50x (no interval: why)")
    assert significance.verdict({"ratio": 1.5, "ci95": None}) == "1.50x (no interval: one repeat)"
    assert significance.verdict({"ratio": 1.376, "ci95": [1.214, 1.566], "significant": True}
                                ) == "1.38x [1.21, 1.57]"
    assert significance.verdict({"ratio": 1.02, "ci95": [0.951, 1.094], "significant": False}
                                ) == "~ (1.02x [0.95, 1.09]: no measurable difference)"
    assert significance.verdict({"ratio": 0.5, "ci95": [0.4, 0.6]}).startswith("~ (")
