"""Smoke tests of the bench machinery: real pinned children, the null and tiny engines,
windows of a fraction of a second. They check that each measurement measures what it
claims (samples inside their slice, a cache miss then a hit, zmm FMAs in the peak kernel,
no TensorFlow behind ``--help``), not this machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from affinity import plan, read_topology
from scaler.bench import report
from scaler.bench.machine import CpuMeter
from tests.scaler.helpers import ROOT

TOPOLOGY = read_topology()
WHOLE = plan(TOPOLOGY, 1).partitions[0]
CPUS, NODES = list(WHOLE.cpus), list(WHOLE.nodes)


def test_null_overhead_child_alternates_real_slices():
    from scaler.bench.harness import measure_overhead

    r = measure_overhead("null", "fp32", "resnet50", CPUS, NODES, slice_s=0.1, rounds=3)
    assert r["rounds"] == 3
    assert [x["order"][0] for x in r["per_round"]] == ["bare", "timed", "control"]
    assert r["worker"]["binding"]["cpus"] == CPUS and r["worker"]["threads"] == len(CPUS)
    for x in r["per_round"]:
        assert min(x["bare_queries"], x["timed_queries"], x["control_queries"]) > 1000
        assert 0.05 < x["timed_s"] < 1.0 and x["timed_recorded_s"] <= x["timed_s"]
    # recording two clock reads per query cannot be free against a call that does nothing
    assert r["timed_us_per_query"] > r["bare_us_per_query"]
    assert 0 < r["extra_us_per_query"] < 50
    # the same bare loop twice lands far closer to itself than to the timed loop
    assert abs(r["control_median_ratio"] - 1) < 1 - r["median_ratio"]


def test_tf_overhead_child_is_close_to_its_bare_loop():
    from scaler.bench.harness import measure_overhead

    r = measure_overhead("tf", "fp32", "tiny", CPUS, NODES, slice_s=0.2, rounds=2)
    assert r["worker"]["engine"]["engine"] == "tf"
    assert 0.5 < r["median_ratio"] < 1.5, r["per_round"]


def test_null_engine_through_the_coordinator():
    from scaler.bench.harness import measure_coordinator_null

    r = measure_coordinator_null(CPUS, NODES, repeats=1, min_duration_s=0.3, warmup_s=0.1)
    group = r["groups"][0]
    assert group["queries"] > 1000 and group["throughput"]["method"] == "common_window"
    assert 0 < r["us_per_query"] < report.TARGETS["coordinator_us_per_query"]


def test_peak_kernels_are_512_bit_and_run_pinned():
    from scaler.bench.peak import CHAINS, KINDS, measure_peak

    r = measure_peak([TOPOLOGY.usable_cores[0].cpus[0]], seconds=0.2, reps=2, isa=TOPOLOGY.isa)
    for name, peak in r["precisions"].items():
        if KINDS[name].isa in TOPOLOGY.isa:
            assert peak["zmm_instructions"] >= CHAINS, name
        assert peak["per_core_gops"] > 1
    assert set(r["precisions"]) >= {"fp32"}
    assert len(r["solo"][0]["kinds"]["fp32"]["gops"]) == 2
    assert r["machine_gflops"] == pytest.approx(r["per_core_gflops"] * r["cores"], rel=1e-3)


def test_efficiency_layouts_with_the_null_engine(tmp_path):
    from scaler.bench.efficiency import measure_precision, with_peak

    r = measure_precision("fp32", "null", "resnet50", 4, tmp_path, min_duration_s=0.3,
                          min_queries=2, warmup_s=0.1, quiet=True)
    assert [x["status"] for x in r["layouts"]] == ["complete"] * len(r["layouts"])
    assert r["best"]["throughput_ips"] == max(x["throughput_ips"] for x in r["layouts"])
    # each layout's workers are gone (and waited for) inside its own meter: their CPU time
    # (start-up, warm-up, a busy null loop) counts as the bench's own, not as someone else's
    assert all(x["machine"]["own_cpu_s"] >= 0.3 for x in r["layouts"]), r["layouts"]
    assert (tmp_path / os.path.basename(r["run"]) / "run.json").is_file()
    peak = {"machine_gflops": 100.0, "precisions": {"fp32": {"machine_gops": 100.0}}}
    assert with_peak(r, peak)["fraction_of_fp32_peak"] == pytest.approx(
        r["best"]["gflops"] / 100.0)


def test_startup_of_the_null_engine_is_inside_the_command(tmp_path):
    from scaler.bench.startup import time_to_first_query

    r = time_to_first_query("null", "fp32", "resnet50", tmp_path, None)
    assert 0 < r["seconds"] < r["command_wall_s"] < 120


def test_help_imports_nothing_heavy():
    from scaler.bench.startup import measure_help

    r = measure_help(1)
    assert r["modules_imported"] > 10  # the import trace was really read
    assert r["heavy_modules"] == [] and not r["imports_tensorflow"]


def test_meter_counts_waited_children_as_own():
    code = "import time\nwhile time.process_time() < 1.0: pass"
    with CpuMeter() as meter:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert meter.result["own_cpu_s"] >= 0.95


def test_targets_are_judged_from_raw_figures():
    def results(fraction, int8_ips):
        best = {"throughput_ips": 50.0, "label": "x", "gflops": 410.0}
        return {"sections": {"efficiency": {"precisions": [
            {"precision": "fp32", "engine": "tf", "model": "resnet50", "layouts": [],
             "best": best, "fraction_of_fp32_peak": fraction},
            {"precision": "int8", "engine": "tflite", "model": "resnet50", "layouts": [],
             "best": {**best, "throughput_ips": int8_ips}, "fraction_of_fp32_peak": 2.0}]}}}

    def met(r, figure):
        return [row["met"] for row in report.rows(r) if row["figure"].startswith(figure)]

    assert met(results(0.76, 160.0), "best fp32") == [True]
    assert met(results(0.74, 160.0), "best fp32") == [False]
    assert met(results(0.76, 160.0), "int8 / fp32") == [True]
    assert met(results(0.76, 140.0), "int8 / fp32") == [False]
    assert met({**results(0.74, 140.0), "quick": True}, "best fp32") == [None]

    def harness(overhead, noise):
        return {"sections": {"harness": {"engines": [
            {"engine": "tf", "precision": "fp32", "model": "resnet50", "batch": 1,
             "overhead_pct": overhead, "median_ratio": 1 - overhead / 100, "ratio_min": 0.9,
             "ratio_max": 1.1, "control_min": 0.9, "control_max": 1.1, "noise_pct": noise,
             "bare_us_per_query": 50_000.0}]}}}

    assert met(harness(0.5, 4.0), "timed loop") == [True]
    assert met(harness(2.0, 4.0), "timed loop") == ["unresolved"]
    assert met(harness(2.0, 0.5), "timed loop") == [False]


def test_cli_writes_json_and_table_atomically(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-m", "scaler.bench", "--quick", "--only", "help",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["quick"] is True and doc["errors"] == {}
    assert doc["sections"]["help"]["machine"]["wall_s"] > 0
    table = (tmp_path / "bench.md").read_text()
    assert "| section | figure |" in table and "scaler --help" in table
    assert "scaler --help" in r.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_refuses_unknown_sections(tmp_path):
    r = subprocess.run([sys.executable, "-m", "scaler.bench", "--only", "bogus",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 2 and "bogus" in r.stderr
    assert not (tmp_path / "bench.json").exists()
