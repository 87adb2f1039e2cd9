"""The scenario commands end to end, as a user runs them (real workers, tiny model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scaler.helpers import ROOT, alive, scaler_cmd, worker_pids_of

# the tests that measure are marked serial one by one (tests/conftest.py); the refusals, the
# help and the reading of a damaged run run beside the others
SERIAL = pytest.mark.serial

SHORT = ["--min-duration", "1", "--min-queries", "5", "--warmup", "0.2"]


@SERIAL
def test_scaling_shared_and_pinned_json(tmp_path):
    # the default engine (tf) end to end; 0.3 s windows: TF's tiny model answers thousands
    # of queries in them, and nothing here reads a figure beyond its being there
    r = scaler_cmd("scaling", "--instances", "1-2", "--placement", "shared,pinned",
                   "--model", "tiny", "--min-duration", "0.3", "--min-queries", "5",
                   "--warmup", "0.2", "--out", str(tmp_path), "--json",
                   env={"SCALER_PLOTS": "on"})  # off for the suite (tests/conftest.py)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert Path(summary["run"]).is_dir()
    series = {s["placement"]: s for s in summary["series"]}
    assert set(series) == {"shared", "pinned"}
    for s in series.values():
        assert s["engine"] == "tf" and s["precision"] == "fp32"
        assert [p["instances"] for p in s["points"]] == [1, 2]
        for p in s["points"]:
            assert p["throughput_ips"] > 0
            assert p["latency_ms"]["p50"] > 0 and p["latency_ms"]["p99"] >= p["latency_ms"]["p50"]
            assert p["oversubscribed"] is False
    assert set(summary["pinned_over_shared"]) == {"1", "2"}
    run = Path(summary["run"])
    doc = json.loads((run / "run.json").read_text())
    assert doc["schema_version"] == 2 and doc["status"] == "complete"
    pinned2 = [g for g in doc["groups"] if g["placement"] == "pinned" and g["instances"] == 2][0]
    assert sorted(c for i in pinned2["per_instance"] for c in i["binding"]["cpus"]) == [0, 1]
    assert all(i["threads"] == 1 for i in pinned2["per_instance"])
    # the oneDNN probe's cache key reads TensorFlow's version without importing it (this
    # process has not): the one the workers' TensorFlow reported
    from scaler.engines.onednn_probe import tf_version

    assert {i["engine"]["tf_version"] for i in pinned2["per_instance"]} == {tf_version()}
    shared1, shared2 = [g for g in doc["groups"] if g["placement"] == "shared"]
    assert all(i["threads"] == 2 for i in shared2["per_instance"])
    # the warm worker of N=1 serves again at N=2; the second one is new
    assert shared1["per_instance"][0]["reused"] is False
    assert [i["reused"] for i in shared2["per_instance"]] == [True, False]
    assert shared2["per_instance"][0]["pid"] == shared1["per_instance"][0]["pid"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [f"g{k}.npz" for k in range(4)]
    assert (run / "scaling.png").is_file()
    shown = scaler_cmd("show", str(run), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["series"] == summary["series"]


@SERIAL
def test_latency_and_throughput_json(tmp_path):
    """On TF Lite (no TensorFlow to import in each worker); the default engine (tf) runs
    end to end in the first test of this file."""
    r = scaler_cmd("latency", "--engine", "tflite", "--model", "tiny", *SHORT, "--out",
                   str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert set(s["latency_ms"]) >= {"mean", "p50", "p90", "p99", "p99.9"}
    assert s["samples"] >= 5
    r = scaler_cmd("throughput", "--engine", "tflite", "--model", "tiny", "--batch", "8",
                   *SHORT, "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["batch"] == 8 and s["throughput_ips"] > 0


@SERIAL
def test_multistream_finds_largest_batch_under_bound(tmp_path):
    # no minimum duration: each probe's window is the queries p99 needs (its figures are
    # read only against the bound), not 1 s of up to 500,000 null queries
    r = scaler_cmd("multistream", "--engine", "null", "--latency-bound-ms", "5",
                   "--instances", "1-2", "--max-batch", "8", "--stat", "p99",
                   "--min-duration", "0", "--min-queries", "5", "--warmup", "0",
                   "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["latency_bound_ms"] == 5 and s["stat"] == "p99"
    rows = {row["instances"]: row for row in s["results"]}
    assert set(rows) == {1, 2}
    # the null engine meets any bound: the search stops at the largest batch allowed
    assert all(row["batch"] == 8 and row["latency_ms"] <= 5 for row in rows.values())


@pytest.mark.parametrize("args, needle", [
    (["scaling", "--instances", "0"], "at least 1"),
    (["throughput", "--batch", "0"], "--batch must be positive"),
    (["multistream", "--latency-bound-ms", "-1"], "--latency-bound-ms must be positive"),
    (["scaling", "--placement", "bogus"], "unknown placement"),
    (["latency", "--precision", "fp64"], "precision"),
    (["latency", "--engine", "tf", "--precision", "int8"], "int8"),
    (["latency", "--model", "/no/such/model.keras"], "/no/such/model.keras"),
    (["latency", "--out", "/proc/version/x"], "output folder"),
    (["show", "/no/such/run"], "no such run folder"),
    (["latency", "--min-duration", "abc"], "min-duration"),
    (["latency", "--placement", "shared,nowhere"], "unknown placement"),
    (["latency", "--instances", "2"], "use `scaler scaling --instances`"),
    (["latency", "--repeat", "0"], "--repeat must be positive"),
    (["latency", "--noise-limit", "1.5"], "--noise-limit must lie in [0, 1]"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    r = scaler_cmd(*args, "--model", "tiny") if "--model" not in args and args[0] != "show" \
        else scaler_cmd(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_run_file_is_a_clear_error(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    r = scaler_cmd("show", str(tmp_path))
    assert r.returncode == 2 and "corrupt run file" in r.stderr  # bad input: exit 2
    (tmp_path / "run.json").write_text('{"hello": 1}')
    r = scaler_cmd("show", str(tmp_path))
    assert r.returncode == 2 and "not a scaler run file" in r.stderr


@SERIAL
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_children_and_keeps_partial_run(tmp_path, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaler", "scaling", "--engine", "null", "--instances", "2",
         "--placement", "pinned", "--min-duration", "120", "--warmup", "0", "--out",
         str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
        # 1 ms queries: --max-queries (250 000) is minutes away, on any CPU
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SCALER_NULL_SERVICE_S": "0.001"})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "measuring" in line or time.monotonic() > deadline:
                break
        time.sleep(1.0)  # the workers begin together 0.1 s after "measuring"
        children = worker_pids_of(proc.pid)
        assert len(children) == 2
        t0 = time.monotonic()
        proc.send_signal(sig)
        rest = proc.stderr.read()
        code = proc.wait(timeout=20)
        assert time.monotonic() - t0 < 10
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert code == 130, rest
    assert "partial results saved" in rest
    assert not any(alive(p) for p in children)
    runs = list(tmp_path.glob("scaling-*/run.json"))
    doc = json.loads(runs[0].read_text())
    assert doc["status"] == "partial" and doc["groups"][0]["per_instance"][0]["queries"] > 0


@SERIAL
@pytest.mark.parametrize("gap_s", [0.05, 0.5])
def test_a_second_ctrl_c_prints_no_traceback_and_leaves_no_process(tmp_path, gap_s):
    """Ctrl-C twice: once while the workers measure, again while they are being stopped
    (gap 0.05 s) or after (0.5 s): still no traceback, exit 130, a partial run, no process.
    The sleepy test engine keeps the first stop busy for a moment (2 ms queries)."""
    from tests.scaler.test_plugins import PLUGIN

    proc = subprocess.Popen(
        [sys.executable, "-m", "scaler", "scaling", "--engine", "sleepy", "--model", "tiny",
         "--instances", "2", "--placement", "pinned", "--min-duration", "120", "--warmup",
         "0", "--out", str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **PLUGIN})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "measuring" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)  # a chunk of samples has arrived
        children = worker_pids_of(proc.pid)
        assert len(children) == 2
        proc.send_signal(signal.SIGINT)
        time.sleep(gap_s)
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert code == 130, rest
    assert "Traceback" not in rest, rest
    assert not any(alive(p) for p in children)
    doc = json.loads(next(tmp_path.glob("scaling-*/run.json")).read_text())
    assert doc["status"] == "partial"


def test_help_imports_nothing_heavy():
    code = ("import sys; from scaler.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('tensorflow', 'numpy', 'matplotlib', 'numba', 'scipy')"
            " if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "HEAVY=", r.stderr


@SERIAL
def test_results_go_to_stdout_and_progress_to_stderr(tmp_path):
    r = scaler_cmd("latency", "--engine", "null", "--placement", "shared", "--min-duration",
                   "0.2", "--warmup", "0", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("latency: null fp32") and "latency: mean" in r.stdout
    assert "starting workers" in r.stderr and "starting workers" not in r.stdout
    assert "[1/1] shared x1 batch 1" in r.stderr  # the sweep says where it is
    # SCALER_PLOTS=off (the suite's default, tests/conftest.py) leaves the figures out; the
    # first test of this file draws them with it on
    assert list(tmp_path.rglob("run.json")) and not list(tmp_path.rglob("*.png"))


def test_version_and_rule_defaults_in_help():
    r = scaler_cmd("--version")
    assert r.returncode == 0 and r.stdout.strip().startswith("scaler ")
    text = " ".join(scaler_cmd("scaling", "--help").stdout.split())
    assert "scaling 10 s" in text and "scaling 200" in text


@SERIAL
def test_multistream_says_which_instance_counts_it_leaves_out_and_smt_without_smt(tmp_path):
    from affinity import read_topology

    topo = read_topology()
    cores = len(topo.usable_cores)
    r = scaler_cmd("multistream", "--engine", "null", "--instances", f"1,{cores + 1}",
                   "--max-batch", "2", "--min-duration", "0.1", "--warmup", "0", "--smt",
                   "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert any(f"left out N={cores + 1}" in n for n in summary["notes"])
    assert f"left out N={cores + 1}" in r.stderr
    if topo.threads_per_core == 1:
        assert any("--smt changes nothing" in n for n in summary["notes"])


@SERIAL
def test_run_json_records_the_cpu_model_governor_turbo_and_kernel(tmp_path):
    r = scaler_cmd("latency", "--engine", "null", "--min-duration", "0.1", "--warmup", "0",
                   "--out", str(tmp_path), "--json")
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    host = doc["host"]
    with open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    assert host["cpu_model"] == model and host["kernel"]
    assert {"governors", "turbo"} <= set(host["facts"])
