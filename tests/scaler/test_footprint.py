"""Memory is checked for every engine and model before any worker starts: from the footprint
workers measured (recorded in the model cache at their first run), conservative before that,
on this machine and on a fleet's hosts; a refusal leaves no run folder behind."""

from __future__ import annotations

import json

import pytest

from scaler import footprint
from scaler.placements.base import available_memory_bytes
from tests.scaler.helpers import scaler_cmd
from tests.scaler.targets.conftest import sshd  # noqa: F401

NULL = ["--engine", "null", "--model", "tiny", "--min-queries", "10", "--warmup", "0.1",
        "--min-duration", "0.2"]


def _too_many(gb_each: float) -> int:
    return int(available_memory_bytes() / (gb_each * 2**30)) + 10


def _one_error(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    return lines[0]


def test_any_model_is_refused_before_a_worker_starts_and_leaves_no_run_folder(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    n = _too_many(0.05)  # the null engine's conservative default
    done = scaler_cmd("scaling", *NULL, "--instances", f"1,{n}", "--placement", "shared",
                      "--cache-dir", str(cache), "--out", str(out), timeout=60)
    line = _one_error(done)
    assert f"scaler: error: {n} null worker(s) of tiny at batch 1 need about" in line
    assert "estimated: not measured yet" in line
    assert list(out.iterdir()) == []  # no run folder, no claim: nothing started


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_a_run_records_the_footprint_its_workers_measured_and_the_check_uses_it(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    done = scaler_cmd("latency", *NULL, "--placement", "pinned", "--cache-dir", str(cache),
                      "--out", str(out), timeout=120)
    assert done.returncode == 0, done.stderr
    (run,) = out.glob("latency-*")
    inst = json.loads((run / "run.json").read_text())["groups"][0]["per_instance"][0]
    rss = inst["rss_peak_bytes"]  # read back from the worker itself
    assert 10 << 20 < rss < 4 << 30
    gb = footprint.measured_gb("null", "tiny", "fp32", 1, str(cache))
    assert gb == rss / 2**30
    est = footprint.estimate_gb("null", "tiny", "fp32", 1, str(cache))
    assert est.source == "measured" and est == gb * footprint.MARGIN
    n = _too_many(est)
    refused = scaler_cmd("scaling", *NULL, "--instances", str(n), "--placement", "shared",
                         "--cache-dir", str(cache), "--out", str(out),
                         timeout=60)
    line = _one_error(refused)
    assert f"{est:.2f} GiB each, measured" in line
    assert sorted(p.name for p in out.iterdir()) == [run.name]


def test_a_fleet_host_is_checked_against_its_own_memory(tmp_path, sshd):  # noqa: F811
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(sshd.hosts_toml("box"))
    out = tmp_path / "out"
    n = 4096  # x 0.05 GiB: 200 GiB
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    if total > n * 0.05 * 2**30:
        pytest.skip("this machine holds 4096 null workers")
    done = scaler_cmd("scaling", *NULL, "--instances", str(n), "--placement", "shared",
                      "--hosts", str(hosts), "--cache-dir", str(tmp_path / "c"), "--out",
                      str(out), timeout=120)
    line = _one_error(done)
    assert f"{n} null worker(s) of tiny at batch 1 need about" in line
    assert "but host box has only" in line
    assert not out.exists() or list(out.iterdir()) == []
