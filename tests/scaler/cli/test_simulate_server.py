"""``scaler simulate --scenario server`` as a user runs it, on committed measured runs."""

from __future__ import annotations

import json

import pytest

from tests.scaler.helpers import ROOT, scaler_cmd

SUITE = ROOT / "results" / "reference" / "suite-20261126-191416"
CALIBRATION = [SUITE / "scaling-20261126-191755", SUITE / "latency-20261126-191416"]
SERVED = ROOT / "results" / "reference" / "server-20261129"


@pytest.mark.long
def test_simulate_server_on_a_bigger_machine_writes_a_server_run(tmp_path):
    """Calibrated on the committed tf scaling and latency runs, a 2s28c2t machine gets a
    peak per layout and a hockey stick; the run folder is marked simulated and ``scaler
    show`` reads the same peaks from it. The peaks are only checked for shape (a rate per
    layout, passing below the first failing one, latency rising with load): their values
    are the model's."""
    r = scaler_cmd("simulate", *map(str, CALIBRATION), "--scenario", "server",
                   "--machine", "2s28c2t", "--placement", "shared,pinned",
                   "--instances", "1,2", "--latency-bound-ms", "2000", "--out",
                   str(tmp_path), "--json", timeout=600,
                   env={"SCALER_PLOTS": "on"})  # off for the suite (tests/conftest.py)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["scenario"] == "server" and summary["simulated"] is True
    assert set(summary["peak_qps"]) == {"shared x1", "shared x2", "pinned x1", "pinned x2"}
    for layout, peak in summary["peak_qps"].items():
        search = summary["searches"][layout]
        assert peak == search["peak_qps"] and peak > 0
        assert search["first_failing_qps"] > peak
        rows = sorted((x for x in summary["results"] if x["layout"] == layout),
                      key=lambda x: x["target_qps"])
        p50 = [x["latency_ms"]["p50"] for x in rows]
        assert p50[-1] > p50[0]  # the hockey stick rises
    assert summary["peak_qps"]["pinned x2"] > summary["peak_qps"]["pinned x1"]
    run = tmp_path / summary["run"].rsplit("/", 1)[-1]
    assert (run / "server.png").is_file()
    doc = json.loads((run / "run.json").read_text())
    assert doc["simulated"] and doc["machine"]["source"].startswith("--machine 2s28c2t")
    assert all(g["simulated"] for g in doc["groups"])
    shown = scaler_cmd("show", str(run), "--json", timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["peak_qps"] == summary["peak_qps"]


def test_validate_gives_the_held_out_error_of_the_peak(tmp_path):
    """The committed measured server run replayed on a model calibrated on its own
    machine's scaling and latency runs (never on the server run): a row per measured
    layout with both peaks and their ratio. The figures are the model's; what is checked
    is that the replay mirrors the measured search (same start and precision, so the
    simulated probes start at the measured start rate)."""
    measured = json.loads((next(SERVED.glob("server-*")) / "run.json").read_text())
    calibration = [*SERVED.glob("scaling-*"), *SERVED.glob("latency-*")]
    r = scaler_cmd("simulate", *map(str, calibration), "--scenario",
                   "server", "--validate", str(next(SERVED.glob("server-*"))), "--out",
                   str(tmp_path), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    layouts = {row["layout"]: row for row in report["layouts"]}
    assert set(layouts) == set(measured["summary"]["peak_qps"])
    for name, row in layouts.items():
        assert row["measured_peak_qps"] == measured["summary"]["peak_qps"][name]
        assert row["simulated_probes"][0][0] == measured["requested"]["target_qps"]
        if row["measured_peak_qps"] and row["simulated_peak_qps"]:
            assert row["error"] == pytest.approx(
                row["simulated_peak_qps"] / row["measured_peak_qps"] - 1)
    assert len(report["simulated_runs"]) == 1


@pytest.mark.parametrize("argv,needle", [
    (["--stat", "p95"], "not one a server run decides on"),
    (["--target-qps", "-3"], "--target-qps"),
    (["--batch", "4", "--max-batch", "2"], "less than --batch"),
    (["--batch-timeout-ms", "-1"], "--batch-timeout-ms"),
    (["--repeat", "0"], "--repeat"),
    (["--validate", str(CALIBRATION[0])], "needs a measured server run"),
    (["--validate", str(CALIBRATION[0]), "--calibrate-on", "1"], "--calibrate-on"),
])
def test_bad_server_input_is_one_line_exit_2(tmp_path, argv, needle):
    r = scaler_cmd("simulate", *map(str, CALIBRATION), "--scenario", "server",
                   "--out", str(tmp_path), *argv, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("scaler: error:") and r.stderr.count("\n") == 1, r.stderr
    assert needle in r.stderr, r.stderr
