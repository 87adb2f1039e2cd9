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


def test_emulated_series_are_left_out_beside_real_ones_unless_allowed(tmp_path):
    groups = [group("pinned", 1, 30), group("vm", 1, 0.1, emulated=True)]
    r = run(tmp_path, "scaling", groups)
    fig = plots.scaling_figure([r])  # the real series is drawn, the emulated one left out
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "pinned (tf fp32)" in labels and not any("emulated" in x for x in labels)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert any(n.startswith("emulated series left out (vm") for n in notes)
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


def test_several_runs_are_told_apart_by_what_differs(tmp_path):
    """Three runs of different engines and dates: colours by placement, markers by run,
    labels saying what differs; a --label per run replaces them."""
    runs = []
    for k, (engine, precision, created) in enumerate([("tf", "fp32", "2026-11-01T10:00"),
                                                      ("tflite", "int8", "2026-11-02T10:00"),
                                                      ("tf", "fp32", "2026-11-03T10:00")]):
        gs = [group(p, n, 10 * (k + 1) * n, engine=engine, precision=precision)
              for p in ("shared", "pinned") for n in (1, 2)]
        r = run(tmp_path / str(k), "scaling", gs)
        r.doc["effective"].update(engine=engine, precision=precision)
        r.doc["created"] = created
        runs.append(r)
    labels = plots.run_labels(runs)
    assert labels[runs[0].path] == "tf fp32, 2026-11-01 10:00"
    assert labels[runs[1].path] == "tflite int8, 2026-11-02 10:00"
    fig = plots.scaling_figure(runs)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    a = lines["pinned (tf fp32) [tf fp32, 2026-11-01 10:00]"]
    b = lines["pinned (tflite int8) [tflite int8, 2026-11-02 10:00]"]
    c = lines["shared (tf fp32) [tf fp32, 2026-11-01 10:00]"]
    assert a.get_color() == b.get_color() != c.get_color()  # colour: the placement
    assert a.get_marker() != b.get_marker() and a.get_marker() == c.get_marker()  # marker: run
    assert "tflite int8" in ax.get_title() and "tf fp32" in ax.get_title()
    named = plots.run_labels(runs, ["base", "int8", "again"])
    assert list(named.values()) == ["base", "int8", "again"]
    with pytest.raises(UsageError, match="--label given 1 time"):
        plots.run_labels(runs, ["one"])


def test_a_simulation_made_a_minute_after_its_measurement_is_told_apart_by_simulated_only(
        tmp_path):
    """A measurement and its simulation differ only in date (the simulation ran at 19:51,
    the run at 19:50): no date label, the simulated series says [simulated] (a test that
    crossed a minute boundary found the date label instead)."""
    measured = run(tmp_path / "m", "scaling", [group("pinned", 1, 10)])
    measured.doc["created"] = "2026-12-07T19:50:59"
    simulated = run(tmp_path / "s", "scaling", [group("pinned", 1, 10, simulated=True)])
    simulated.doc.update(created="2026-12-07T19:51:00", simulated=True)
    assert plots.run_labels([measured, simulated]) == {measured.path: "", simulated.path: ""}
    labels = [t.get_text() for t in plots.scaling_figure([measured, simulated]).axes[0]
              .get_legend().get_texts()]
    assert "pinned (tf fp32) [simulated]" in labels and "pinned (tf fp32)" in labels
    # two measurements of different dates are still told apart by date
    again = run(tmp_path / "a", "scaling", [group("pinned", 1, 10)])
    again.doc["created"] = "2026-12-07T19:51:00"
    assert plots.run_labels([measured, again])[again.path] == "2026-12-07 19:51"


def test_titles_name_the_machine_and_a_null_engine_is_not_a_model(tmp_path):
    r = run(tmp_path, "scaling", [group("pinned", 1, 5)])
    r.doc["host"].update(cpu_model="Intel(R) Xeon(R) Gold 6348", topology={"cores": 56})
    r.doc["effective"]["engine"] = "null"
    title = plots.scaling_figure([r]).axes[0].get_title()
    assert "Intel(R) Xeon(R) Gold 6348, 56 cores" in title
    assert "null engine (no inference)" in title and "resnet50" not in title


def test_three_runs_share_one_ideal_entry_per_placement_and_name_an_unknown_cpu_by_host(
        tmp_path):
    """Overlaying runs adds their series to the legend, not another "ideal linear" per run;
    a run that recorded no CPU model is named by its host, said to be one ("vm" is also a
    placement)."""
    runs = []
    for k in range(3):
        r = run(tmp_path / str(k), "scaling", [group(p, n, 10 * (k + 1) * n)
                                              for p in ("shared", "pinned") for n in (1, 2)])
        r.doc["created"] = f"2026-11-0{k + 1}T10:00"
        runs.append(r)
    runs[0].doc["host"].update(hostname="vm")
    runs[1].doc["host"].update(cpu_model="Intel(R) Xeon(R) Processor")
    ax = plots.scaling_figure(runs).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels.count("ideal linear (shared)") == 1
    assert labels.count("ideal linear (pinned)") == 1
    assert sum(label.startswith(("shared (", "pinned (")) for label in labels) == 6
    assert 'on host "vm", 2 cores; Intel(R) Xeon(R) Processor, 2 cores; host "h"' in \
        ax.get_title()
    assert plots.run_labels(runs)[runs[0].path].startswith('host "vm", ')


def test_the_y_axis_fits_the_data_and_oversubscribed_points_stay_out_of_the_fit(tmp_path):
    """A plateau: the ideal line would reach 8x the first point; the axis stops at twice
    the largest measured value. Points past the 2 cores (oversubscribed) are not fitted."""
    gs = [group("pinned", n, ips) for n, ips in ((1, 10), (2, 19), (3, 20), (4, 20),
                                                 (5, 20), (6, 20), (7, 20), (8, 20))]
    for g in gs:
        g["oversubscribed"] = g["instances"] > 2
    ax = plots.scaling_figure([run(tmp_path, "scaling", gs)]).axes[0]
    assert ax.get_ylim()[1] <= 40.0 + 1e-9
    # 2 points within the cores: too few for a fit, so no fit line at all
    assert not any(t.get_text().startswith("USL fit") for t in ax.get_legend().get_texts())


def test_many_latency_points_become_percentile_lines_of_a_readable_size(tmp_path):
    gs = [group("pinned", n, 10 * n) for n in range(1, 65)]
    for g in gs:
        g["latency_ms"] = {"p50": 10.0 + n_ if (n_ := g["instances"]) else 0, "p90": 20.0,
                           "p99": 30.0 + g["instances"], "p99.9": 40.0, "samples": 50}
    fig = plots.latency_figure([run(tmp_path, "scaling", gs)])
    width, height = fig.get_size_inches() * 120
    assert width <= 1000 and height <= 700  # not 900 x 13,884 px
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "pinned (tf fp32, batch 1) p99" in labels
    assert fig.axes[0].get_xlabel() == "instances"


def test_percentiles_from_too_few_queries_are_drawn_hollow(tmp_path):
    g = group("pinned", 1, 10)
    g["latency_ms"] = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p99.9": 4.0, "samples": 100}
    fig = plots.latency_figure([run(tmp_path, "latency", [g])])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "p50" in labels and "p99 (too few queries)" in labels  # 100 < 662
    assert "p99.9 (too few queries)" in labels and "p99" not in labels
