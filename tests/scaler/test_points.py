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


# --- every field of a point, worked out by hand ---------------------------------------------


def test_every_field_of_a_point_of_three_repeats():
    groups = [group(0, 100.0, 0, share=0.02, lat=(1.0, 2.0)),
              group(1, 130.0, 1, share=None, lat=(1.5, 2.5)),
              group(2, 90.0, 2, share=0.03, lat=(0.9, 1.9)),
              group(3, 50.0, 3, status="partial", noisy=True, share=0.5)]
    groups[0]["warnings"] = ["b warning", "a warning"]
    groups[2]["warnings"] = ["a warning"]
    groups[3]["warnings"] = ["from the failed repeat"]
    groups[1]["oversubscribed"] = True  # read from the first group only
    for g in groups:
        g["per_instance"] = [{"index": 0, "throughput_ips": g["throughput_ips"] / 2},
                             {"index": 1, "throughput_ips": g["throughput_ips"] / 2 + 1}]
    groups[0]["latency_ms"]["mean"] = 1.2
    (p,) = points.aggregate(groups)
    ci = p.pop("ci95_ips")
    logs = np.log([100.0, 130.0, 90.0])
    from scipy import stats as scipy_stats

    want = scipy_stats.t.interval(0.95, 2, loc=logs.mean(), scale=scipy_stats.sem(logs))
    assert ci == pytest.approx(list(np.exp(want)), rel=1e-12)
    cv = p.pop("cv")
    assert cv == pytest.approx(scipy_stats.variation([100, 130, 90], ddof=1), rel=1e-12)
    assert p == {
        "series": "pinned", "placement": "pinned", "engine": "tf", "precision": "fp32",
        "model": "resnet50", "instances": 1, "batch": 1,  # layout, target_qps: None, left out
        "groups": [0, 1, 2, 3], "repeats": 4, "complete": 3,
        "throughput_ips": 100.0, "repeats_ips": [100.0, 130.0, 90.0],
        "min_ips": 90.0, "max_ips": 130.0, "unstable": True,
        "noisy": True,  # the failed repeat was noisy: the point says so
        "contended": False, "remeasured": 0,  # no speed probe in these records
        "others_cpu_share": 0.5, "oversubscribed": False,
        "latency_ms": {"p50": 1.0, "p99": 2.0, "mean": 1.2},  # no raw samples: the first's
        "latency_repeats": [{"mean": 1.2, "p50": 1.0, "p99": 2.0},
                            {"mean": None, "p50": 1.5, "p99": 2.5},
                            {"mean": None, "p50": 0.9, "p99": 1.9}],
        "warnings": ["a warning", "b warning"],  # of complete repeats, once each, sorted
        "per_instance_ips": [50.0, 51.0],  # of the repeat at the median
    }


def test_the_instances_shown_are_those_of_the_repeat_nearest_the_median():
    groups = [group(0, 100.0, 0), group(1, 90.0, 1), group(2, 120.0, 2), group(3, 105.0, 3)]
    for g in groups:
        g["per_instance"] = [{"index": 0, "throughput_ips": g["throughput_ips"]}]
    (p,) = points.aggregate(groups)
    assert p["throughput_ips"] == 102.5  # median of four
    assert p["per_instance_ips"] == [100.0]  # 100 and 105 are as near: the first measured


def test_points_are_told_apart_by_every_key_field_in_the_order_first_measured():
    base = group(0, 10.0, 0)
    variants = [{"layout": "2x1"}, {"layout": "1x2"}, {"batch": 8}, {"target_qps": 5.0},
                {"series": "shared"}, {"model": "mobilenet"}, {"instances": 2},
                {"precision": "int8"}, {"engine": "tflite"}, {"placement": "vm"},
                {"threading": "model-zoo"}, {"isa_cap": "avx512_core"}]
    groups = [dict(base, id=k + 1, **v) for k, v in enumerate(variants)]
    groups.append(dict(base, id=99))  # a second repeat of the base point, measured last
    got = points.aggregate([base, *groups])
    assert [p["groups"] for p in got] == [[0, 99], *[[k + 1] for k in range(len(variants))]]
    assert got[1]["layout"] == "2x1" and "layout" not in got[0]
    assert points.point_key(groups[0]) == ("pinned", "pinned", None, None, "tf", "fp32",
                                           "resnet50", 1, 1, "2x1", None)
    assert got[-2]["threading"] == "model-zoo"  # styles are points of their own
    assert got[-1]["isa_cap"] == "avx512_core"  # and so are ISA caps


def test_complete_repeats_only_count():
    groups = [group(0, 100.0, 0), group(1, 50.0, 1, status="partial"),
              group(2, None, 2), group(3, 110.0, 3, status="failed")]
    (p,) = points.aggregate(groups)
    assert p["repeats_ips"] == [100.0] and p["complete"] == 1 and p["repeats"] == 4
    assert p["latency_repeats"] == [{"mean": None, "p50": 1.0, "p99": 2.0}]


def test_a_point_without_a_complete_repeat():
    (p,) = points.aggregate([group(0, None, 0, status="partial", share=None)])
    assert p["throughput_ips"] is None and p["ci95_ips"] is None and p["repeats_ips"] == []
    assert p["min_ips"] is None and p["max_ips"] is None and p["cv"] is None
    assert p["unstable"] is False and p["others_cpu_share"] is None
    assert p["latency_ms"] == {"samples": 0} and p["latency_repeats"] == []
    assert p["warnings"] == [] and "per_instance_ips" not in p


def test_labels_and_per_host_figures_come_through():
    g = group(0, 30.0, 0)
    g.update(simulated=True, emulated=False, probe=True,
             per_host={"a": {"throughput_ips": 10.0, "instances": 1},
                       "b": {"throughput_ips": 20.0, "instances": 2}})
    (p,) = points.aggregate([g])
    assert p["simulated"] is True and p["probe"] is True and "emulated" not in p
    assert p["per_host_ips"] == {"a": 10.0, "b": 20.0}
    g2 = dict(group(0, 30.0, 0), emulated=True)
    (p,) = points.aggregate([g2])
    assert p["emulated"] is True and "simulated" not in p and "probe" not in p
    assert "per_host_ips" not in p and "target_qps" not in p and "valid" not in p


def test_a_served_point_across_repeats():
    def served(gid, qps, valid, lag, bound=False, reasons=()):
        g = dict(group(gid, qps, gid), target_qps=40.0, valid=valid, bound_failed=bound,
                 invalid_reasons=list(reasons))
        if lag is not None:
            g["generator"] = {"lag_ms": {"p99": lag}}
        return g

    groups = [served(0, 39.0, True, 0.5), served(1, 38.0, True, None),
              served(2, 40.0, False, 2.5, bound=True, reasons=["z", "a"]),
              dict(served(3, None, True, 1.0, reasons=["a"]), generator=None)]
    (p,) = points.aggregate(groups)
    assert p["target_qps"] == 40.0 and p["achieved_qps"] == 39.0 == p["throughput_ips"]
    assert p["valid"] is False and p["bound_failed"] is True
    assert p["invalid_reasons"] == ["a", "z"] and p["generator_lag_p99_ms"] == 2.5
    groups = [served(0, 39.0, True, None), served(1, 41.0, True, None)]
    (p,) = points.aggregate(groups)
    assert p["valid"] is True and p["bound_failed"] is False and p["invalid_reasons"] == []
    assert p["generator_lag_p99_ms"] is None and p["achieved_qps"] == 40.0
    assert points.point_of(groups, None)["target_qps"] == 40.0


# --- latency pooled over repeats -------------------------------------------------------------


def test_pooled_latency_keeps_nanoseconds_of_a_real_clock():
    base = 1_700_000_000_123_456_789
    groups = [group(0, 10.0, 0), group(1, 10.0, 1)]
    for g in groups:
        g["per_instance"] = [{"index": 0}, {"index": 1}]
    arrays = {
        "g0_i0_start_ns": np.array([base], np.uint64),
        "g0_i0_end_ns": np.array([base + 1_000_001], np.uint64),
        "g0_i1_start_ns": np.array([base + 7], np.int64),
        "g0_i1_end_ns": np.array([base + 2_000_003], np.int64),
        "g1_i0_start_ns": [base + 11], "g1_i0_end_ns": [base + 3_000_016],
        "g1_i1_start_ns": np.array([base]),  # its end is missing: left out
    }
    (p,) = points.aggregate(groups, arrays)
    lat = p["latency_ms"]
    assert lat["samples"] == 3
    assert (lat["min"], lat["max"]) == (pytest.approx(1.000001, rel=1e-12),
                                        pytest.approx(3.000005, rel=1e-12))
    assert lat["mean"] == pytest.approx((1.000001 + 1.999996 + 3.000005) / 3, rel=1e-12)


def test_without_raw_samples_the_middle_repeats_summary_stands():
    groups = [group(0, 10.0, 0, lat=(1.0, 2.0)), group(1, 11.0, 1, lat=(3.0, 4.0))]
    # sample arrays of other groups only (a simulated or remote point among measured ones)
    (p,) = points.aggregate(groups, {"g7_i0_start_ns": np.zeros(1, np.int64),
                                     "g7_i0_end_ns": np.ones(1, np.int64)})
    assert p["latency_ms"] == {"p50": 3.0, "p99": 4.0}  # done[len // 2]: the second of two
    for g in groups:
        g["latency_ms"] = None
    (p,) = points.aggregate(groups, {})
    assert p["latency_ms"] == {"samples": 0}
    groups[0]["per_instance"] = []
    del groups[1]["per_instance"]
    (p,) = points.aggregate(groups, {})
    assert p["latency_ms"] == {"samples": 0}


def test_one_repeat_keeps_its_own_summary_and_none_says_zero_samples():
    g = group(0, 10.0, 0, lat=(5.0, 6.0))
    arrays = {"g0_i0_start_ns": np.zeros(3, np.int64), "g0_i0_end_ns": np.ones(3, np.int64)}
    (p,) = points.aggregate([g], arrays)
    assert p["latency_ms"] == {"p50": 5.0, "p99": 6.0}  # the group's own (same samples)
    g["latency_ms"] = {}
    (p,) = points.aggregate([g], None)
    assert p["latency_ms"] == {"samples": 0}


def test_decision_latency_without_an_early_stopping_table():
    assert points.decision_latency({"p99": 10.0}, "p99") == 10.0
    assert points.decision_latency({"p99": 10.0, "early_stopping": None}, "p99") == 10.0
    lat = {"p95": 7.0, "p99.9": 20.0, "early_stopping": {"p50": 1.0, "p90": 5.0, "p99": 11.0}}
    assert points.decision_latency(lat, "p95") == 7.0  # no conservative p95: the plain one
    assert points.decision_latency(lat, "p99.9") == 20.0
    assert points.decision_latency(lat, "p50") == 1.0
    assert points.decision_latency({}, "p90") is None


def test_too_few_queries_is_judged_on_the_queries_the_point_pools():
    """Three repeats of 250 queries: each too few for p99 (662) alone, 750 pooled are
    enough; p99.9 (6636) is still short, and says 750; other warnings stay as they were."""
    from scaler import stats

    groups = [group(k, 100.0, k) for k in range(3)]
    arrays = {}
    for g in groups:
        g["warnings"] = [*stats.sample_warnings(250), "run rule not met"]
        arrays[f"g{g['id']}_i0_start_ns"] = np.zeros(250, np.int64)
        arrays[f"g{g['id']}_i0_end_ns"] = np.arange(1, 251, dtype=np.int64) * 1_000_000
    (p,) = points.aggregate(groups, arrays)
    assert p["latency_ms"]["samples"] == 750
    assert p["warnings"] == sorted(["run rule not met", *stats.sample_warnings(750)])
    assert [w.split(" from")[0] for w in stats.sample_warnings(750)] == ["p99.9"]
    (alone,) = points.aggregate(groups[:1])  # no raw samples, one repeat: its own count
    assert alone["warnings"] == sorted(groups[0]["warnings"])


def test_a_remeasured_contended_attempt_is_kept_but_left_out_of_its_point():
    groups = [group(0, 100.0, 0), group(1, 40.0, 1), group(2, 98.0, 1)]
    groups[1].update(superseded=True, speed_probe={"contended": True, "edges": []})
    groups[2]["speed_probe"] = {"contended": False, "edges": []}
    (p,) = points.aggregate(groups)
    assert p["groups"] == [0, 2] and p["repeats_ips"] == [100.0, 98.0]
    assert p["remeasured"] == 1 and not p["contended"]
    groups[2]["speed_probe"]["contended"] = True  # every attempt contended: the last stands
    (p,) = points.aggregate(groups)
    assert p["contended"] and p["groups"] == [0, 2]
