"""The study section's simulated part (``report --machine``), from hand-made runs: a run of
the styles built by hand (``styled_run``: tuned groups from the base model's closed form,
model-zoo groups stacked on CPUs 0,1 with a known spin share and stacking cost), the
study's measured run (``study_run``), and a tuned-only run that cannot calibrate the
style terms. The simulated curves are checked against the terms module's own per-layout
prediction (``terms.predict_ips``, tested against the hand formula in test_styleterms), not
against the split's code; nothing here measures or depends on speed."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from scaler.report import study, study_sim
from scaler.report.inputs import Inputs
from tests.scaler.simulate.conftest import fake_measured_run, make_model, styled_run
from tests.scaler.test_suite_study import study_run


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    return styled_run(tmp_path_factory.mktemp("styles") / "run", make_model(),
                      styles=("tuned", "model-zoo"))


@pytest.fixture(scope="module")
def sim(styles):
    return study_sim.simulate([styles], "2s28c2t", cores_per_instance=6, smt=True)


def test_the_simulated_curves_are_the_style_terms_on_the_studys_layouts(styles, sim):
    from scaler.simulate.machine import parse_machine
    from scaler.simulate.model import closed_form_ips
    from scaler.simulate.stylecheck import calibrate_styled
    from scaler.simulate.terms import predict_ips, styled_layout

    assert sim["calibration_runs"] == [str(styles.path)]
    assert sim["instances"] == list(range(1, 9)) and sim["at"] == 8
    assert set(sim["curves"]) == {"shared-model-zoo", "shared-tuned", "vm-model-zoo",
                                  "vm-tuned"}
    base, terms = calibrate_styled([styles])
    xeon = parse_machine("2s28c2t")
    for n in (1, 4, 8):
        for p in ("shared", "vm"):
            lay, bound = styled_layout(xeon, p, n, "model-zoo", True, 6)
            assert sim["curves"][f"{p}-model-zoo"][str(n)] == pytest.approx(
                predict_ips(base.values, terms, lay, bound, "model-zoo"), rel=1e-9)
            tuned, _ = styled_layout(xeon, p, n, "tuned", True, 6)
            assert sim["curves"][f"{p}-tuned"][str(n)] == pytest.approx(
                closed_form_ips(tuned, base.values), rel=1e-9)
    # eight whole-machine instances stacked thread by thread: the study's bare metal is the
    # slowest at N=8, and the two ratios are those of the curves, each style on both sides
    c = {k: v["8"] for k, v in sim["curves"].items()}
    assert c["shared-model-zoo"] < c["shared-tuned"]
    assert sim["over_study"] == pytest.approx(c["vm-model-zoo"] / c["shared-model-zoo"])
    assert sim["over_tuned"] == pytest.approx(c["vm-tuned"] / c["shared-tuned"])
    assert sim["over_study"] > sim["over_tuned"]
    assert sim["study"]["ratio"] == 2.04  # 8 fixed-size instances: the study's yardstick


def test_the_split_lists_each_term_with_value_interval_and_source(sim):
    terms = {t["name"]: t for t in sim["terms"]}
    assert {"stacking", "stack_cost", "spin"} <= set(terms)
    for name in ("stack_cost", "spin"):
        assert terms[name]["source"] == "measured"
        lo, hi = terms[name]["interval_95"]
        assert lo <= terms[name]["value"] <= hi
    assert terms["stacking"]["from"].startswith("read back stacked in 3 model-zoo group(s)")
    total = sim["layout_share"] + sum(t["share_of_ratio"] for t in sim["terms"])
    assert total == pytest.approx(1.0)
    html = study_sim.html(sim)
    line = (f"Simulated on 2s28c2t at N=8: vm over the study&#x27;s bare metal "
            f"{sim['over_study']:.2f}x; over tuned bare metal {sim['over_tuned']:.2f}x")
    assert line in html
    rows = re.findall(r"<tr><td><code>(\w+)</code></td><td class=\"num\">([^<]+)</td>"
                      r"<td>([^<]+)</td><td><span[^>]*>(\w+)</span></td>", html)
    shown = {name: (value, interval, source) for name, value, interval, source in rows}
    assert shown["stack_cost"][2] == "measured" and shown["stack_cost"][1].startswith("[")
    assert shown["stacking"] == ("1.00", "-", "measured")
    assert "the layouts alone (every term off)" in html
    assert "The study measured 2.04x at N=8." in html


def test_the_section_with_machine_draws_the_simulated_panel_in_its_figure(styles, sim,
                                                                            tmp_path):
    html = study.section(Inputs([study_run(tmp_path), styles], []), sim)
    assert html.count("<img") == 1  # one figure: the measured bars and the simulated curves
    assert "Last panel, dashed and open markers: simulated on 2s28c2t" in html
    assert "<h3>Simulated on 2s28c2t</h3>" in html
    assert "<b>VM-like over the study&#x27;s bare metal" in html  # the measured line stays
    from scaler.plot_study import study_figure

    fig = study_figure([], study_sim.panel(sim))
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == set(sim["curves"])
    zoo = lines["shared-model-zoo"]
    assert list(zoo.get_xdata()) == list(range(1, 9)) and zoo.get_linestyle() == "--"
    assert lines["shared-tuned"].get_linestyle() == ":"
    assert math.isclose(zoo.get_ydata()[-1], sim["curves"]["shared-model-zoo"]["8"])


def test_without_styled_runs_the_section_says_why_in_one_line(tmp_path):
    tuned = fake_measured_run(tmp_path / "tuned", make_model(), instances=(1, 2))
    sim = study_sim.simulate([tuned], "2s28c2t")
    assert set(sim) == {"refused"}
    html = study.section(Inputs([study_run(tmp_path), tuned], []), sim)
    (line,) = re.findall(r"<p class=\"note\"><span class=\"badge b-partial\">not simulated"
                         r"</span>[^<]*</p>", html)
    assert "no run among the inputs measured a --threading style other than tuned" in line
    assert "cannot be calibrated" in line and "Simulated on" not in html
    assert "Last panel" not in html
    assert "Not simulated: <code>scaler report" in study.section(Inputs([tuned], []))


def test_styles_without_model_zoo_are_refused_in_one_line(tmp_path):
    run = styled_run(tmp_path / "defaults", make_model(), styles=("tuned", "defaults"))
    sim = study_sim.simulate([run], "2s28c2t")
    assert "--threading model-zoo" in sim["refused"] and "defaults" in sim["refused"]
    assert "\n" not in sim["refused"]


def test_the_page_passes_machine_to_the_section_and_a_failure_keeps_the_measurements(
        styles, tmp_path, monkeypatch):
    from scaler.report import page

    inputs = Inputs([study_run(tmp_path), styles], [])
    predict = page.Prediction("2s28c2t", (1, 8), queries=1000, cores_per_instance=6, smt=True)
    sim = page._study_sim(inputs, predict, [])
    assert sim["over_study"] == pytest.approx(
        sim["curves"]["vm-model-zoo"]["8"] / sim["curves"]["shared-model-zoo"]["8"])
    assert sim["instances"] == [1, 8] and sim["study"]["ratio"] == 2.04
    assert sim["placement"] == "vm"  # the study's, unless --machine-placement names another
    pinned = page._study_sim(inputs, replace(predict, placement="pinned"), [])
    assert pinned["placement"] == "pinned" and "pinned-model-zoo" in pinned["curves"]
    assert page._study_sim(inputs, None, []) is None

    def broken(*args, **kwargs):
        raise RuntimeError("topology unreadable")

    monkeypatch.setattr(study_sim, "simulate", broken)
    problems: list[str] = []
    sim = page._study_sim(inputs, predict, problems)
    assert problems == ["study: simulation: RuntimeError: topology unreadable"]
    html = study.section(inputs, sim)
    assert "<b>VM-like over the study&#x27;s bare metal" in html  # the measurements stay
    assert "not simulated</span> the simulation failed: RuntimeError: topology unreadable" in html
