"""``scaler fit`` as a user runs it: real runs of the null engine and of a tiny model (with
oversubscribed counts on this 2-core machine), and one hand-written run whose throughput
grows exactly linearly (σ = 0). stdout and stderr are read apart."""

from __future__ import annotations

import json
import re

import pytest

from scaler import results
from tests.scaler.helpers import scaler_cmd
from tests.suites import NULL_ENV

# the runs are measured once, first in the serial group (test_the_runs_are_measured); the
# tests that only read them run beside the group (tests/conftest.py)

E_NOTATION = re.compile(r"\d\.?\d*e[-+]\d")


def made(*argv: str, env: dict[str, str] | None = None) -> str:
    r = scaler_cmd(*argv, "--json", timeout=240, env=env or {})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["run"]


@pytest.fixture(scope="module")
def runs(artifacts):
    return artifacts.get("fit_runs", measure)


@pytest.mark.serial
@pytest.mark.builds
def test_the_runs_are_measured(runs):
    assert set(runs) == {"null", "tiny", "linear"}


def measure(base):
    out = ("--out", str(base))
    return {
        "null": made("scaling", "--engine", "null", "--instances", "1-4", "--placement",
                     "pinned", "--min-duration", "0.3", "--min-queries", "50", "--warmup",
                     "0.1", *out, env=NULL_ENV),  # 0.5 ms queries: a few hundred samples
        # 1-4 pinned on 2 cores: N = 3 and 4 are oversubscribed
        "tiny": made("scaling", "--engine", "tflite", "--model", "tiny", "--instances", "1-4",
                     "--placement", "pinned", "--min-duration", "0.3", "--min-queries", "100",
                     "--warmup", "0.1", *out),
        "linear": linear_run(base / "linear"),
    }


def linear_run(path) -> str:
    """A hand-written run (schema of a measured scaling run) whose 8-core machine gives
    exactly 100 images/s per instance at N = 1..6: the USL fit has σ = 0 and κ = 0. It proves
    how the CLI prints quantities that do not exist, nothing about measurement."""
    cores = [{"package": 0, "die": 0, "core_id": c, "node": 0, "cpus": [c]} for c in range(8)]
    groups = [{"id": n - 1, "placement": "pinned", "engine": "tflite", "precision": "fp32",
               "model": "tiny", "instances": n, "batch": 1, "status": "complete",
               "repeat": 0, "oversubscribed": False, "throughput_ips": 100.0 * n,
               "latency_ms": {"mean": 10.0, "p50": 10.0, "p99": 12.0, "samples": 1000},
               "per_instance": [{"index": i, "partition": {"cpus": [i]}} for i in range(n)]}
              for n in range(1, 7)]
    doc = {"scenario": "scaling", "status": "complete", "emulated": False, "groups": groups,
           "requested": {"repeat": 1}, "effective": {"engine": "tflite", "precision": "fp32",
                                                     "model": "tiny"},
           "host": {"hostname": "h", "topology": {"packages": 1, "cores": 8, "cpus": 8,
                                                  "threads_per_core": 1,
                                                  "physical_cores": cores}}}
    return str(results.save_run(path, doc, {}))


def fit(*argv: str):
    return scaler_cmd("fit", *argv, timeout=120)


def test_sigma_zero_prints_none_and_readable_numbers(runs):
    r = fit(runs["linear"])
    assert r.returncode == 0, r.stderr
    assert "Amdahl ceiling lambda/sigma: none (sigma ≈ 0" in r.stdout
    assert "peak: none" in r.stdout
    # the bounded solver stops near σ = 0 (about 1e-5 on exactly linear data): a plain decimal
    assert re.search(r"lambda 100 \[[\d.]+, [\d.]+\] images/s   sigma 0(\.0*\d+)? \[0, 0\.0*\d+\]",
                     r.stdout), r.stdout
    assert not E_NOTATION.search(r.stdout), r.stdout
    data = json.loads(fit(runs["linear"], "--json").stdout)
    (f,) = data["fits"]
    assert f["amdahl_ceiling_ips"] is None and f["peak_instances"] is None
    assert f["sigma_negligible"] and f["sigma"] < 1e-4


def test_null_engine_is_left_out_unless_asked(runs):
    r = fit(runs["null"])
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith("scaler: error: no series can be fitted")
    assert f"left out {runs['null']}: null engine" in r.stderr
    r = fit(runs["null"], "--include", "null,oversubscribed")
    assert r.returncode == 0, r.stderr
    assert "pinned (null fp32" in r.stdout and "4 points" in r.stdout
    assert not E_NOTATION.search(r.stdout), r.stdout


def test_oversubscribed_points_are_left_out_unless_asked(runs):
    r = fit(runs["tiny"])
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "left out 2 oversubscribed point(s)" in r.stderr
    assert "pinned N=3, pinned N=4" in r.stderr and "at least 4" in r.stderr
    r = fit(runs["tiny"], "--include", "oversubscribed", "--json")
    assert r.returncode == 0, r.stderr
    r2 = fit(runs["tiny"], "--include", "oversubscribed,null")
    assert "scaler: note" not in r2.stderr  # nothing left out
    (f,) = json.loads(r.stdout)["fits"]
    assert f["points"] == 4 and f["instances_range"] == [1, 4]
    assert isinstance(f["unconstrained"], list)
    # warnings about unconstrained parameters go to stderr, never into the results
    r = fit(runs["tiny"], "--include", "oversubscribed")
    assert "scaler: warning" not in r.stdout
    for w in f["unconstrained"]:
        assert w in r.stderr and w not in r.stdout


def test_bad_include_is_one_line_exit_2(runs):
    r = fit(runs["tiny"], "--include", "everything")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("scaler: error: unknown --include") and r.stderr.count("\n") == 1
