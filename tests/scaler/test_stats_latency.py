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
