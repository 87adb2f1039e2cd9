"""Each placement against bare metal (``scaler.comparisons``) on hand-written series: the
ratios are chosen to be read off by hand (single repeats: the ratio of the two values;
identical repeats: an exact interval)."""

from __future__ import annotations

import pytest

from scaler.comparisons import baseline_comparisons, comparison_lines, ratios_over_baseline


def series(placement, points, threading=None, engine="tf", precision="fp32", isa_cap=None,
           **extra):
    out = {"placement": placement, "engine": engine, "precision": precision,
           "points": [{"instances": n, "repeats_ips": ips, "latency_mean_repeats": lat,
                       **more} for n, ips, lat, more in points], **extra}
    if threading is not None:
        out["threading"] = threading
    if isa_cap is not None:
        out["isa_cap"] = isa_cap
    return out


def test_each_placement_over_bare_metal_at_every_n_measured_in_both():
    shared = series("shared", [(1, [100.0], [10.0], {}), (2, [100.0], [20.0], {})])
    pinned = series("pinned", [(1, [150.0], [5.0], {}), (4, [300.0], [1.0], {}),
                               (2, [50.0], [40.0], {"noisy": True})])
    out = baseline_comparisons([pinned, shared])
    assert [(c["placement"], c["baseline"], c["instances"], c["ratio"]) for c in out] == [
        ("pinned", "shared", 1, 1.5), ("pinned", "shared", 2, 0.5)]  # N=4: no bare metal
    first = out[0]
    assert (first["metric"], first["engine"], first["precision"]) == ("throughput_ips", "tf",
                                                                      "fp32")
    assert (first["threading"], first["isa_cap"]) == (None, None)
    assert (first["ci95"], first["p_value"], first["significant"]) == (None, None, False)
    assert [c["noisy"] for c in out] == [False, True]
    lat = baseline_comparisons([pinned, shared], "latency_mean_ms")
    assert [(c["metric"], c["ratio"]) for c in lat] == [("latency_mean_ms", 0.5),
                                                         ("latency_mean_ms", 2.0)]


def test_a_noisy_baseline_point_flags_the_comparison():
    shared = series("shared", [(1, [100.0], [10.0], {"noisy": True})])
    pinned = series("pinned", [(1, [150.0], [5.0], {})])
    (c,) = baseline_comparisons([shared, pinned])
    assert c["noisy"] is True


def test_identical_repeats_give_an_exact_significant_ratio():
    shared = series("shared", [(1, [100.0, 100.0], [10.0, 10.0], {})])
    pinned = series("pinned", [(1, [200.0, 200.0], [5.0, 5.0], {})])
    (c,) = baseline_comparisons([shared, pinned])
    assert c["ratio"] == pytest.approx(2.0) and c["ci95"] == [pytest.approx(2.0)] * 2
    assert c["significant"] is True and c["p_value"] == 0.0


def test_styles_engines_and_isa_caps_are_compared_only_with_their_own_bare_metal():
    series_list = [
        series("shared", [(1, [100.0], [1.0], {})], threading="model-zoo"),
        series("shared", [(1, [200.0], [1.0], {})], threading="tuned"),
        series("shared", [(1, [400.0], [1.0], {})], engine="tflite"),
        series("shared", [(1, [800.0], [1.0], {})], precision="int8"),
        series("shared", [(1, [50.0], [1.0], {})], isa_cap="AVX2"),
        series("pinned", [(1, [300.0], [1.0], {})], threading="model-zoo"),
        series("pinned", [(1, [300.0], [1.0], {})], threading="tuned"),
        series("pinned", [(1, [300.0], [1.0], {})], engine="tflite"),
        series("pinned", [(1, [300.0], [1.0], {})], precision="int8"),
        series("pinned", [(1, [300.0], [1.0], {})], isa_cap="AVX2"),
        series("pinned", [(1, [300.0], [1.0], {})], threading="defaults"),  # no bare metal
    ]
    out = baseline_comparisons(series_list)
    assert [(c["placement"], c["baseline"], c["ratio"]) for c in out] == [
        ("pinned-model-zoo", "shared-model-zoo", 3.0), ("pinned", "shared", 1.5),
        ("pinned", "shared", 0.75), ("pinned", "shared", 0.375), ("pinned", "shared", 6.0)]
    assert [(c["engine"], c["precision"], c["threading"], c["isa_cap"]) for c in out] == [
        ("tf", "fp32", "model-zoo", None), ("tf", "fp32", "tuned", None),
        ("tflite", "fp32", None, None), ("tf", "int8", None, None), ("tf", "fp32", None, "AVX2")]


def test_a_series_label_is_its_recorded_series_name():
    shared = series("shared", [(1, [100.0], [1.0], {})], series="shared-tuned")
    pinned = series("pinned", [(1, [200.0], [1.0], {})], series="pinned-tuned")
    (c,) = baseline_comparisons([shared, pinned])
    assert (c["placement"], c["baseline"]) == ("pinned-tuned", "shared-tuned")


def test_no_bare_metal_no_comparison():
    assert baseline_comparisons([series("pinned", [(1, [1.0], [1.0], {})])]) == []


def cmp(top, base, n, ratio, ci=None, significant=False, **extra):
    return {"placement": top, "baseline": base, "instances": n, "ratio": ratio, "ci95": ci,
            "significant": significant, **extra}


def test_ratios_over_baseline_keep_the_bare_ratios():
    rows = [cmp("pinned", "shared", 1, 1.04), cmp("pinned", "shared", 2, None),
            cmp("pinned", "shared", 4, 1.5), cmp("vm", "shared", 1, 0.9)]
    assert ratios_over_baseline(rows) == {"pinned_over_shared": {"1": 1.04, "4": 1.5},
                                          "vm_over_shared": {"1": 0.9}}
    assert ratios_over_baseline([cmp("vm", "shared", 1, None)]) == {}


def test_comparison_lines_one_per_placement_pair():
    rows = [cmp("pinned", "shared", 1, 1.38), cmp("pinned", "shared", 2, None, noisy=True),
            cmp("vm", "shared", 1, 1.5, [1.3, 1.7], True),
            cmp("vm", "shared", 2, 1.02, [0.95, 1.09], False, noisy=True)]
    assert comparison_lines(rows, "  ", "latency") == [
        "  pinned/shared latency (one repeat: no intervals, not findings): N=1 1.38x  N=2 - "
        "noisy",
        "  vm/shared latency: N=1 1.50x [1.30, 1.70]  N=2 ~ (1.02x [0.95, 1.09]: no measurable "
        "difference) noisy"]
    assert comparison_lines(rows[:1], "") == [
        "pinned/shared (one repeat: no intervals, not findings): N=1 1.38x"]
    assert comparison_lines([], "  ") == []
