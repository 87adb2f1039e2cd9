"""Latency percentiles and throughput windows on hand-made samples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from scaler import stats


def test_latency_percentiles_in_ms():
    start = np.zeros(1000, dtype=np.int64)
    end = (np.arange(1, 1001) * 1_000_000).astype(np.int64)  # 1..1000 ms
    lat = stats.latency_ms(start, end)
    assert lat["samples"] == 1000
    assert lat["mean"] == pytest.approx(500.5)
    assert lat["p50"] == pytest.approx(500.5)
    assert lat["p99"] == pytest.approx(990.01)
    assert lat["min"] == 1 and lat["max"] == 1000


def test_few_samples_are_flagged_at_the_early_stopping_minimum():
    assert stats.sample_warnings(50)[0].startswith("p99 from 50 queries: fewer than the 662")
    assert len(stats.sample_warnings(661)) == 2
    assert len(stats.sample_warnings(662)) == 1  # p99.9 only
    assert stats.sample_warnings(6636) == []


def test_common_window_counts_only_overlap():
    # instance A runs 0..10 s at 10 q/s, instance B 5..15 s at 10 q/s
    a_end = np.arange(1, 101) * 100_000_000
    b_end = 5_000_000_000 + np.arange(1, 101) * 100_000_000
    starts = [a_end - 100_000_000, b_end - 100_000_000]
    ips, how = stats.throughput_ips(starts, [a_end, b_end], batch=1, shared_clock=True)
    assert how["method"] == "common_window"
    assert how["window_s"] == pytest.approx(5.0)
    assert ips == pytest.approx(20.0)


def test_without_shared_clock_rates_are_summed():
    end = np.arange(1, 11) * 1_000_000_000
    ips, how = stats.throughput_ips([end - 10**9, end + 7], [end, end + 10**9 + 7], batch=4,
                                    shared_clock=False)
    assert how["method"] == "sum_of_instances"
    assert ips == pytest.approx(8.0)


def test_an_instance_without_queries_gives_no_throughput():
    ips, how = stats.throughput_ips([np.array([1]), np.array([], dtype=np.int64)],
                                    [np.array([2]), np.array([], dtype=np.int64)], 1, True)
    assert ips == 0 and how["method"] == "none"


def test_a_long_batch_straddling_the_window_counts_by_its_share_in_it():
    """Batch 64, two instances: A runs 4 queries of 10 s (0..40 s), B starts at 15 s and runs
    3 queries of 10 s (15..45 s). The common window is [15, 40]: A's queries overlap it by
    5, 10 and 10 s (shares 0.5, 1, 1), B's by 10, 10 and 5 s (1, 1, 0.5): 5 queries of 64
    images in 25 s (counting whole queries by end time gives 5 too, by luck; the next case
    moves B's start so the two differ)."""
    s_a = np.array([0, 10, 20, 30]) * 10**9
    s_b = np.array([15, 25, 35]) * 10**9
    ips, how = stats.throughput_ips([s_a, s_b], [s_a + 10**10, s_b + 10**10], batch=64,
                                    shared_clock=True)
    assert how["window_s"] == pytest.approx(25.0)
    assert how["queries_in_window"] == pytest.approx(5.0)
    assert ips == pytest.approx(5 * 64 / 25.0)
    # B starts at 12 s: window [12, 40]; A: 0 + 0.8 + 1 + 1, B: 1 + 1 + 0.8 = 5.6 queries;
    # whole queries ending inside the window would count A 3 + B 2 = 5 (11% low)
    s_b = np.array([12, 22, 32]) * 10**9
    ips, how = stats.throughput_ips([s_a, s_b], [s_a + 10**10, s_b + 10**10], batch=64,
                                    shared_clock=True)
    assert how["queries_in_window"] == pytest.approx(5.6)
    assert ips == pytest.approx(5.6 * 64 / 28.0)


def test_windows_that_do_not_overlap_are_summed_and_flagged():
    a = np.array([0, 1]) * 10**9
    b = np.array([5, 6]) * 10**9
    ips, how = stats.throughput_ips([a, b], [a + 10**9, b + 10**9], batch=2, shared_clock=True)
    assert how["method"] == "sum_of_instances" and "do not overlap" in how["fallback"]
    assert ips == pytest.approx(4.0)  # each: 2 queries x 2 images in 2 s


def test_window_shares_of_zero_length_queries():
    start = np.array([5, 10, 20], dtype=np.int64)
    shares = stats.window_shares(start, start.copy(), 5, 15)
    assert list(shares) == [0.0, 1.0, 0.0]  # ends at the window's start: not inside


def test_early_stopping_minimum_queries_are_loadgens():
    assert stats.early_stopping_min_queries(0.90) == 64
    assert stats.early_stopping_min_queries(0.99) == 662
    assert stats.min_passing(0, 0.99) == math.ceil(math.log(0.01) / math.log(0.99))


def test_early_stopping_estimate_is_conservative_and_needs_queries():
    lat = np.random.default_rng(1).exponential(10.0, 20_000)
    plain = float(np.percentile(lat, 99))
    estimate = stats.early_stopping_ms(lat, 0.99)
    assert estimate is not None and estimate >= plain
    assert estimate <= float(np.percentile(lat, 99.5))  # but not wildly so at 20k queries
    assert stats.early_stopping_ms(lat[:661], 0.99) is None
    few = stats.early_stopping_ms(lat[:662], 0.99)
    assert few == pytest.approx(float(np.sort(lat[:662])[-2]))  # one over-latency allowed
    summary = stats.latency_summary(lat[:100])
    assert summary["early_stopping"]["p99"] is None and summary["early_stopping"]["p90"]


# --- exact results on hand-worked windows -------------------------------------------------

MS = 1_000_000
S = 1_000_000_000


def ns(*values):
    return np.array(values, dtype=np.int64)


def test_what_each_method_says_it_did():
    ips, how = stats.throughput_ips([ns(0), ns()], [ns(5), ns()], batch=8, shared_clock=True)
    assert (ips, how) == (0.0, {"method": "none", "reason": "an instance completed no query"})
    ips, how = stats.throughput_ips([], [], batch=8, shared_clock=True)
    assert (ips, how["method"]) == (0.0, "none")
    # separate clocks: each instance's own rate, summed; window_s is the longest instance's
    ips, how = stats.throughput_ips([ns(0, 100 * MS, 300 * MS), ns(1000 * MS, 1100 * MS)],
                                    [ns(50 * MS, 200 * MS, 400 * MS), ns(1050 * MS, 1600 * MS)],
                                    batch=8, shared_clock=False)
    assert how == {"method": "sum_of_instances", "clocks": "separate", "window_s": 0.6}
    assert ips == 3 * 8 / 0.4 + 2 * 8 / 0.6  # sub-second instances: 60 + 26.67 images/s
    # the same samples on one clock never overlap: the same sum, flagged
    ips, how = stats.throughput_ips([ns(0, 100 * MS, 300 * MS), ns(1000 * MS, 1100 * MS)],
                                    [ns(50 * MS, 200 * MS, 400 * MS), ns(1050 * MS, 1600 * MS)],
                                    batch=8, shared_clock=True)
    assert how == {"method": "sum_of_instances",
                   "fallback": "the instances' run windows do not overlap", "window_s": 0.6}
    assert ips == 3 * 8 / 0.4 + 2 * 8 / 0.6


def test_common_window_shares_by_hand():
    """A: one query 0..3 s; B: 1..2.5 s and 2.5..5 s. Window [1, 3]: A counts 2/3, B 1 and
    0.5/2.5 = 1/5: 28/15 queries of batch 4 in 2 s."""
    ips, how = stats.throughput_ips([ns(0), ns(1 * S, 2_500 * MS)],
                                    [ns(3 * S), ns(2_500 * MS, 5 * S)], batch=4,
                                    shared_clock=True)
    assert how == {"method": "common_window", "window_s": 2.0, "queries_in_window": 1.867}
    assert ips == pytest.approx(28 / 15 * 4 / 2.0, rel=1e-12)


def test_windows_overlapping_by_one_nanosecond_use_the_common_window():
    # A: one 10 s query 0..10 s; B: one query from 10 s - 1 ns to 20 s
    ips, how = stats.throughput_ips([ns(0), ns(10 * S - 1)], [ns(10 * S), ns(20 * S)],
                                    batch=2, shared_clock=True)
    assert how["method"] == "common_window" and how["window_s"] == 1e-9
    done = 1 / (10 * S) + 1 / (10 * S + 1)  # each overlaps the window by 1 ns
    assert ips == pytest.approx(done * 2 / 1e-9, rel=1e-12)


def test_windows_that_only_touch_are_not_a_common_window():
    ips, how = stats.throughput_ips([ns(0), ns(10 * S)], [ns(10 * S), ns(20 * S)], batch=1,
                                    shared_clock=True)
    assert how["method"] == "sum_of_instances" and "fallback" in how
    assert ips == 0.1 + 0.1


def test_throughput_on_unsigned_clock_arrays_keeps_the_nanoseconds():
    """uint64 stamps near 1.7e18 ns (a real monotonic clock): an unsigned difference would wrap
    for a query ending before the window, and float64 would round to 256 ns."""
    base = 1_700_000_000_123_456_789
    a_start = np.array([base, base + 1000, base + 2000], dtype=np.uint64)
    b_start = np.array([base + 1300, base + 2300], dtype=np.uint64)
    ips, how = stats.throughput_ips([a_start, b_start], [a_start + 1000, b_start + 1000],
                                    batch=3, shared_clock=True)
    # window [base + 1300, base + 3000]: A 0 + 0.7 + 1, B 1 + 0.7 = 3.4 queries in 1.7 us
    assert how["queries_in_window"] == 3.4 and how["window_s"] == 1.7e-6
    assert ips == pytest.approx(3.4 * 3 / 1.7e-6, rel=1e-12)


def test_window_shares_at_the_edges():
    w0, w1 = 100, 200
    cases = {  # (start, end): share of the query inside [w0, w1]
        (50, 150): 0.5, (150, 250): 0.5, (90, 210): 100 / 120, (120, 180): 1.0,
        (0, 100): 0.0,  # ends exactly at the window's start
        (200, 300): 0.0,  # starts exactly at its end
        (0, 50): 0.0, (250, 300): 0.0,
        (120, 121): 1.0,  # one nanosecond, inside
        (100, 100): 0.0, (150, 150): 1.0, (200, 200): 1.0,  # zero length: by its end, (w0, w1]
        (300, 300): 0.0, (50, 50): 0.0,
    }
    start = ns(*(s for s, _ in cases))
    end = ns(*(e for _, e in cases))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero duration, even unused
        got = stats.window_shares(start, end, w0, w1)
    assert got.tolist() == list(cases.values())
