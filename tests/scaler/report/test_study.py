"""The report's section on the study's 2.04x, from hand-made runs whose answer is known by
hand (identical repeats make each ratio and its interval exact), and its one line, which
never prints a ratio whose interval includes 1 as a finding. The browser test checks that
the section renders with its figure in a real suite's report."""

from __future__ import annotations

import re

import pytest

from scaler.report import study
from scaler.report.inputs import Inputs
from scaler.results import Run
from tests.scaler.test_suite_study import study_run


def test_the_line_prints_a_finding_only_outside_1():
    assert study.finding({"ratio": 1.37, "ci95": [1.10, 1.70]}) == "1.37x [1.10, 1.70]"
    assert study.finding({"ratio": 1.03, "ci95": [0.87, 1.24]}) == (
        "~ 1.03x [0.87, 1.24] (no measurable difference)")
    assert study.finding({"ratio": 1.5, "ci95": [1.0, 2.2]}).startswith("~ ")  # 1 at the end
    assert study.finding({"ratio": 1.4, "ci95": None}) == "1.40x (one repeat: not a finding)"
    assert study.finding(None) == "not measured"
    assert study.headline({"ratio": 1.76, "ci95": [1.43, 2.18]},
                          {"ratio": 1.03, "ci95": [0.87, 1.24]}) == (
        "VM-like over the study's bare metal 1.76x [1.43, 2.18]; over tuned bare metal "
        "~ 1.03x [0.87, 1.24] (no measurable difference)")


def test_the_section_shows_the_line_the_read_back_and_the_figure(tmp_path):
    run = study_run(tmp_path, mz=(50.0, 100.0), tuned=(100.0, 100.0))
    html = study.section(Inputs([run], []))
    assert ("<b>VM-like over the study&#x27;s bare metal 2.00x [2.00, 2.00]; over tuned bare "
            "metal ~ 1.00x [1.00, 1.00] (no measurable difference)</b>") in html
    assert "8 instances, onnxruntime int8" in html and "VM-like: pinned" in html
    assert "stacked the 8 instances thread by thread on the same CPUs 0,1" in html
    assert "spun 30% of their idle CPU time" in html
    assert "recovers the VM-like advantage here" in html  # tuned holds 1, the study's does not
    assert len(re.findall(r'<img alt="the study&#x27;s headline" src="data:image/png', html)) == 1
    m = study.measured(run)
    assert [b["label"] for b in m["bars"]] == ["shared, tuned", "shared, as the study ran it",
                                               "pinned, tuned", "pinned, model-zoo inside"]
    assert [b["ips"] for b in m["bars"]] == [100.0, 50.0, 100.0, 100.0]


def test_a_tuned_gain_is_only_part_of_it_and_no_gain_is_said_plainly(tmp_path):
    part = study.measured(study_run(tmp_path, mz=(50.0, 100.0), tuned=(100.0, 120.0)))
    assert study._advice(part).startswith("Tuned bare metal recovers part")
    none = study.measured(study_run(tmp_path, mz=(100.0, 100.0), tuned=(100.0, 100.0)))
    assert "no measurable advantage, and no finding either way" in study._advice(none)
    slower = study.measured(study_run(tmp_path, mz=(100.0, 90.0)))
    assert "measurably slower" in study._advice(slower)


def test_without_a_model_zoo_run_the_section_says_how_to_measure_it(tmp_path):
    sweep = Run(tmp_path / "s", {"scenario": "scaling", "points": [
        {"placement": "shared", "instances": 2, "complete": 3, "repeats_ips": [1.0] * 3}]})
    html = study.section(Inputs([sweep], []))
    assert "No run among the inputs measured bare metal as the study ran it" in html
    assert "--threading tuned,model-zoo" in html


def test_real_vms_of_another_run_get_a_panel_of_their_own(tmp_path):
    def pt(placement, ips, **extra):
        return {"placement": placement, "instances": 8, "complete": 3, "engine": "tflite",
                "precision": "int8", "repeats_ips": [ips] * 3, "throughput_ips": ips,
                "ci95_ips": [ips, ips], **extra}

    sweep = Run(tmp_path / "sweep", {"scenario": "scaling", "effective": {
        "engine": "tflite", "precision": "int8"}, "points": [
        pt("shared", 90.0), pt("vm", 95.0), pt("vm", 1.0, emulated=True, threading="x")]})
    (panel,) = study.vm_panels([sweep], 8)
    assert panel["title"] == "sweep: tflite int8, N=8"
    assert [(b["label"], b["kind"], b["ips"]) for b in panel["bars"]] == [
        ("shared, tuned", "tuned", 90.0), ("vm, tuned", "vm", 95.0)]
    assert study.vm_panels([sweep], 4) == []
    html = study.section(Inputs([study_run(tmp_path), sweep], []))
    assert html.count("<img") == 1  # one figure, two panels


def test_the_figure_has_a_panel_per_set_a_bar_per_side_and_hatches_one_repeat():
    from scaler.plot_study import COLORS, study_figure

    fig = study_figure([
        {"title": "a", "bars": [{"label": "x", "kind": "tuned", "ips": 10.0, "ci95": [9, 11]},
                                {"label": "y", "kind": "study", "ips": 5.0, "ci95": None}]},
        {"title": "b", "bars": [{"label": "z", "kind": "vm", "ips": 7.0, "ci95": [6, 8]}]}])
    left, right = fig.axes
    rects = left.patches
    assert [r.get_height() for r in rects] == [10.0, 5.0]
    assert [r.get_hatch() for r in rects] == [None, "//"]
    assert [t.get_text() for t in left.get_xticklabels()] == ["x", "y"]
    assert right.get_title() == "b" and len(right.patches) == 1
    from matplotlib.colors import to_hex

    assert to_hex(right.patches[0].get_facecolor()) == COLORS["vm"]
    with pytest.raises(ValueError):
        study_figure([])
