"""Latency percentiles and throughput windows on hand-made samples."""

from __future__ import annotations

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
