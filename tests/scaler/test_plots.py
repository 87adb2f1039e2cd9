"""Plots are built from run documents and saved headless."""

from __future__ import annotations

import copy

import pytest

from scaler import plots
from scaler.errors import UsageError
from scaler.results import Run


def group(placement, n, ips, emulated=False, **extra):
    return {"placement": placement, "engine": "tf", "precision": "fp32", "instances": n,
            "batch": extra.pop("batch", 1), "status": "complete", "throughput_ips": ips,
            "oversubscribed": n > 2, "emulated": emulated,
            "latency_ms": {"p50": 30.0, "p90": 31.0, "p99": 35.0, "p99.9": 40.0},
            "per_instance": [{"throughput_ips": ips / n}] * n, **extra}


def run(tmp_path, scenario, groups, **requested):
    doc = {"scenario": scenario, "status": "complete", "groups": groups,
           "requested": {"latency_bound_ms": 33.3, "stat": "p99", **requested},
           "effective": {"engine": "tf", "precision": "fp32", "model": "resnet50"},
           "host": {"hostname": "h", "topology": {"cores": 2}}}
    return Run(tmp_path, doc)


def test_scaling_figure_has_a_line_per_series_and_ideal(tmp_path):
    groups = [group(p, n, ips) for p, n, ips in [("shared", 1, 30), ("shared", 2, 32),
                                                   ("shared", 4, 33), ("pinned", 1, 30),
                                                   ("pinned", 2, 45), ("pinned", 4, 44)]]
    fig = plots.scaling_figure([run(tmp_path, "scaling", groups)])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "shared (tf fp32)" in labels and "pinned (tf fp32)" in labels
    assert any(lab.startswith("ideal linear") for lab in labels)
    assert any(lab.startswith("oversubscribed") for lab in labels)
    written = plots.save_figures({"scaling": fig}, tmp_path, ("png", "svg"))
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert all(p.stat().st_size for p in written)


def test_emulated_series_refused_beside_real_ones_unless_allowed(tmp_path):
    groups = [group("pinned", 1, 30), group("vm", 1, 0.1, emulated=True)]
    r = run(tmp_path, "scaling", groups)
    with pytest.raises(UsageError, match="emulated"):
        plots.scaling_figure([r])
    fig = plots.scaling_figure([r], allow_emulated=True)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "vm (tf fp32) [emulated]" in labels


def test_multistream_and_latency_figures(tmp_path):
    groups = [group("pinned", 1, 30 * b, batch=b, layout="pinned x1", label=f"b{b}")
              for b in (1, 2, 4)]
    for g, p99 in zip(groups, (20.0, 30.0, 50.0)):
        g["latency_ms"] = copy.deepcopy(g["latency_ms"]) | {"p99": p99}
    r = run(tmp_path, "multistream", groups)
    figs = plots.figures_for([r])
    assert set(figs) == {"latency", "multistream"}
    ax_latency = figs["multistream"].axes[0]
    assert any("bound" in t.get_text() for t in ax_latency.get_legend().get_texts())


def test_unknown_format_is_refused():
    with pytest.raises(UsageError, match="unknown plot format"):
        plots.parse_formats("png,gif")


def test_server_figure_marks_the_bound_the_peak_and_invalid_probes(tmp_path):
    groups = []
    for k, (rate, p99, valid) in enumerate([(100, 10.0, True), (200, 20.0, True),
                                            (400, 300.0, False)]):
        g = group("pinned", 1, rate * 0.95, target_qps=rate, probe=True, valid=valid,
                  layout="pinned x1", id=k)
        g["latency_ms"] = {"p50": p99 / 3, "p90": p99 / 2, "p99": p99, "samples": 700,
                           "early_stopping": {"p99": p99 * 1.2}}
        groups.append(g)
    r = run(tmp_path, "server", groups, latency_bound_ms=100.0)
    fig = plots.figures_for([r])["server"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "bound 100 ms" in labels and "pinned x1 peak 200 qps" in labels
    assert "pinned x1 invalid (generator behind)" in labels
    assert fig.axes[0].get_xlabel() == "offered load (requests/s)"
