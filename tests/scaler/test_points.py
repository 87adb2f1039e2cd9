"""Points across repeats, built from hand-made groups (expected values worked out by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from scaler import points


def group(gid, ips, repeat, status="complete", noisy=False, share=0.01, lat=(1.0, 2.0)):
    return {"id": gid, "placement": "pinned", "engine": "tf", "precision": "fp32",
            "model": "resnet50", "instances": 1, "batch": 1, "series": "pinned",
            "repeat": repeat, "status": status, "throughput_ips": ips, "noisy": noisy,
            "others_cpu_share": share, "oversubscribed": False, "warnings": [],
            "latency_ms": {"p50": lat[0], "p99": lat[1]},
            "per_instance": [{"index": 0, "throughput_ips": ips}]}


def test_repeats_of_a_point_become_one_figure_with_its_interval():
    groups = [group(0, 100.0, 0), group(1, 104.0, 1, noisy=True, share=0.2), group(2, 98.0, 2)]
    (p,) = points.aggregate(groups)
    assert p["throughput_ips"] == 100.0 and p["repeats_ips"] == [100.0, 104.0, 98.0]
    assert p["ci95_ips"][0] < 100.0 < p["ci95_ips"][1]
    assert p["noisy"] is True and p["others_cpu_share"] == 0.2
    assert p["repeats"] == 3 and p["complete"] == 3 and p["groups"] == [0, 1, 2]
    assert p["per_instance_ips"] == [100.0]  # the repeat nearest the median
    assert p["latency_repeats"] == [{"mean": None, "p50": 1.0, "p99": 2.0}] * 3


def test_a_failed_repeat_is_counted_but_not_averaged():
    groups = [group(0, 100.0, 0), group(1, None, 1, status="partial")]
    (p,) = points.aggregate(groups)
    assert p["repeats"] == 2 and p["complete"] == 1
    assert p["repeats_ips"] == [100.0] and p["ci95_ips"] is None


def test_latency_is_pooled_over_the_repeats_raw_samples():
    groups = [group(0, 10.0, 0), group(1, 10.0, 1)]
    ms = 1_000_000
    arrays = {"g0_i0_start_ns": np.zeros(100, np.int64),
              "g0_i0_end_ns": np.full(100, 1 * ms, np.int64),
              "g1_i0_start_ns": np.zeros(100, np.int64),
              "g1_i0_end_ns": np.full(100, 3 * ms, np.int64)}
    (p,) = points.aggregate(groups, arrays)
    assert p["latency_ms"]["samples"] == 200
    assert p["latency_ms"]["mean"] == pytest.approx(2.0)
    assert p["latency_ms"]["p99"] == pytest.approx(3.0)


def test_decision_latency_prefers_the_conservative_estimate():
    lat = {"p99": 10.0, "mean": 5.0, "early_stopping": {"p99": 12.0, "p90": None}}
    assert points.decision_latency(lat, "p99") == 12.0
    assert points.decision_latency(lat, "p90") is None  # too few queries: cannot decide
    assert points.decision_latency(lat, "mean") == 5.0
