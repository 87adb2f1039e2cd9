"""Latency percentiles and throughput windows on hand-made samples."""

from __future__ import annotations

import math

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
