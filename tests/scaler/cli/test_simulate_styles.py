"""``scaler simulate --threading`` and ``--results`` as a user runs them (issue 26, parts 2
and 5).

The calibration runs are built by hand (``tests.scaler.simulate.conftest.styled_run``:
throughputs from the base model's closed form, a chosen spin and a stacking factor worked
out by hand): these tests check the command's mechanics (options, output, refusals), the
terms' recovery is checked in ``tests/scaler/simulate/test_styleterms.py``.
"""

from __future__ import annotations

import json

import pytest

from scaler.cli import main
from scaler.results import load_run
from tests.scaler.simulate.conftest import fake_measured_run, make_model, styled_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("styles")
    return {"styled": styled_run(base / "styled", make_model()),
            "tuned": fake_measured_run(base / "tuned", make_model(), instances=(1, 2, 3))}


def call(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,needle", [
    (["{styled}", "--threading", "warp"], "unknown --threading style 'warp'"),
    (["{styled}", "--threading", "tuned,model-zoo"], "one style at a time"),
    (["{tuned}", "--threading", "model-zoo"], "no model-zoo group"),
    (["{styled}", "--threading", "model-zoo", "--scenario", "multistream"],
     "scaling scenario only"),
    (["--results", "/nonexistent/results"], "no measured suite under /nonexistent/results"),
    (["{styled}", "--threading", "model-zoo", "--assume", "stack_cost=-1"],
     "stack_cost must lie in [0, 10]"),
    (["{tuned}", "--assume", "stack_cost=0.5"], "unknown model parameter 'stack_cost'"),
])
def test_bad_input_is_one_line_exit_2(capsys, runs, tmp_path, argv, needle):
    argv = [a.format(**{k: r.path for k, r in runs.items()}) for a in argv]
    code, _, err = call(capsys, "simulate", *argv, "--instances", "1-2", "--queries", "2000",
                        "--out", tmp_path)
    assert code == 2
    assert err.startswith("scaler: error:") and err.count("\n") == 1 and needle in err, err


def test_model_zoo_on_the_xeon_prints_the_ratio_at_8_and_its_split(capsys, runs, tmp_path):
    code, out, err = call(capsys, "simulate", runs["styled"].path, "--machine", "2s28c2t",
                          "--placement", "shared,vm", "--cores-per-instance", "6", "--smt",
                          "--threading", "model-zoo", "--instances", "1-8", "--queries", "2000",
                          "--out", tmp_path)
    assert code == 0, err
    assert "at N=8" in out and "both placements run --threading model-zoo" in out
    table = out[out.index("95% interval"):]
    for name in ("stacking", "stack_cost", "spin", "numa_penalty"):
        assert f"\n  {name} " in table, name
    assert "tensorflow PR #17656" in out and "the layouts alone" in out
    assert "style terms for --threading model-zoo" in err and "stack_cost" in err
    run = load_run(next(tmp_path.glob("simulated-scaling-*")))
    assert run.doc["requested"]["threading"] == "model-zoo"
    assert {g["series"] for g in run.doc["groups"]} == {"shared-model-zoo", "vm-model-zoo"}
    assert run.doc["style_terms"]["parameters"]["stack_cost"]["source"] == "measured"
    eight = next(g for g in run.doc["groups"]
                 if g["series"] == "shared-model-zoo" and g["instances"] == 8)
    assert all(i["threads"] == 56 and i["partition"]["cpus"] == list(range(56))
               for i in eight["per_instance"])  # thread k of every instance on CPU k
    (x,) = run.doc["explanations"]
    assert x["threading"] == "model-zoo" and x["at"] == 8
    code, out, err = call(capsys, "simulate", runs["styled"].path, "--machine", "2s28c2t",
                          "--placement", "shared,vm", "--cores-per-instance", "6", "--smt",
                          "--threading", "model-zoo", "--instances", "8", "--queries", "2000",
                          "--assume", "stack_cost=0.5", "--out", tmp_path, "--json")
    assert code == 0, err
    held = json.loads(out)["style_terms"]["parameters"]["stack_cost"]
    assert held == {**held, "value": 0.5, "source": "given"}


def test_validate_holds_out_counts_of_each_style(capsys, runs):
    code, out, err = call(capsys, "simulate", "--validate", runs["styled"].path,
                          "--calibrate-on", "1,2")
    assert code == 0, err
    for style in ("tuned", "defaults", "model-zoo"):
        assert f"held-out error, {style}:" in out, out
    assert "style terms for --threading model-zoo" in err
    code, out, _ = call(capsys, "simulate", "--validate", runs["styled"].path,
                        "--calibrate-on", "1,2", "--json")
    report = json.loads(out)
    assert set(report["held_out_error_by_style"]) == {"tuned", "defaults", "model-zoo"}
    assert report["held_out"] == [3, 4]


def test_without_runs_the_newest_suite_is_looked_for_where_suite_writes(capsys, tmp_path,
                                                                        monkeypatch):
    """After a plain `scaler suite` (which writes under results/), `simulate --out sims/`
    calibrates on that suite instead of looking under sims/; --results names another."""
    suite = tmp_path / "results" / "suite-20261207-120000"
    suite.mkdir(parents=True)
    fake_measured_run(suite / "scaling-1", make_model(), instances=(1, 2, 3))
    monkeypatch.chdir(tmp_path)
    code, _, err = call(capsys, "simulate", "--machine", "2s28c2t", "--out", "sims",
                        "--instances", "1-2", "--queries", "2000")
    assert code == 0, err
    assert f"newest measured suite results/{suite.name}" in err, err
    assert len(list((tmp_path / "sims").glob("simulated-scaling-*"))) == 1
    moved = tmp_path / "elsewhere"
    (tmp_path / "results").rename(moved)
    code, _, err = call(capsys, "simulate", "--out", "sims", "--instances", "1-2")
    assert code == 2 and "no measured suite under results/" in err
    code, _, err = call(capsys, "simulate", "--results", moved, "--out", "sims",
                        "--instances", "1-2", "--queries", "2000")
    assert code == 0 and f"{moved}/{suite.name}" in err, err


def test_the_spin_window_cuts_the_stacked_spin_on_the_xeon(capsys, runs, tmp_path):
    """The hand runs read back a 30 ms model-zoo window: on 8 stacked Xeon instances a wait
    would take 7/8 x 3 ms = 2.625 ms of CPU, so they spin through it (spin 1). A measured
    window of 1 ms (a file of ``scaler.engines.ort_spin``) or a given one spins 1 / 2.625."""
    window = tmp_path / "window.json"
    window.write_text(json.dumps({"schema": "scaler.spin_window/1", "styles": {"model-zoo": {
        "spins": True, "spin_cpu_ms": 1.0, "spin_cpu_range_ms": [0.9, 1.1],
        "runtime": "onnxruntime", "version": "1.x", "repeats": 3, "censored": False}}}))
    argv = ["simulate", runs["styled"].path, "--machine", "2s28c2t", "--placement",
            "shared,vm", "--cores-per-instance", "6", "--smt", "--threading", "model-zoo",
            "--instances", "8", "--queries", "2000", "--out", tmp_path, "--json"]

    def spin_term(*extra):
        code, out, err = call(capsys, *argv, *extra)
        assert code == 0, err
        (x,) = json.loads(out)["explanations"]
        return x["ratio_at"], next(t for t in x["terms"] if t["name"] == "spin")

    ratio, own = spin_term()
    assert own["value"] == 1.0 and "at least 30 ms" in own["from"]
    cut_ratio, cut = spin_term("--spin-window", window)
    assert cut["value"] == pytest.approx(1 / 2.625) and cut["source"] == "measured"
    assert cut["interval_95"] == pytest.approx([0.9 / 2.625, 1.1 / 2.625])
    assert "measured here" in cut["from"] and "range [0.9, 1.1] over 3 repeats" in cut["from"]
    assert cut_ratio < ratio  # bare metal loses less to spinning
    _, given = spin_term("--assume", "spin_window_ms=1")
    assert given["value"] == pytest.approx(1 / 2.625) and given["source"] == "given"
    for bad, needle in ((tmp_path / "none.json", "cannot read spin window file"),
                        (runs["styled"].path / "run.json", "not a spin window file")):
        code, _, err = call(capsys, *argv, "--spin-window", bad)
        assert code == 2 and err.count("\n") == 1 and needle in err, err
