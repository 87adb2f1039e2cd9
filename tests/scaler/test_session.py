"""What a run keeps when something goes wrong, through the CLI as a user runs it: a worker
killed mid-window keeps the queries it finished and the run is partial; an error escaping a
group in the middle of a sweep leaves a partial run holding the groups before it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scaler.results import load_run
from tests.scaler.helpers import ROOT, alive, processes, scaler_cmd
from tests.scaler.test_plugins import PLUGIN

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def worker_children(pid: int) -> list[int]:
    return [p for p, (ppid, cmd) in processes().items()
            if ppid == pid and b"scaler.worker" in cmd]


def test_a_worker_killed_mid_window_keeps_its_samples_and_the_run_is_partial(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **PLUGIN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaler", "scaling", "--engine", "sleepy", "--model", "tiny",
         "--placement", "pinned", "--instances", "2", "--min-duration", "20",
         "--min-queries", "10", "--warmup", "0.1", "--out", str(tmp_path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(workers := worker_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, "workers did not start"
        time.sleep(5.0)  # ~5 s into the 20 s window (chunks are sent every second)
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 1, err
    assert "partial results saved in" in err
    run = load_run(json.loads(out)["run"])
    assert run.doc["status"] == "partial" and run.doc["partial_reasons"]
    (group,) = run.doc["groups"]
    dead = [i for i in group["per_instance"] if i["status"] == "failed"]
    assert len(dead) == 1
    kept = dead[0]
    # about 4 s of 2 ms queries were finished before the kill: kept, and marked as such
    assert kept["samples_until_failure"] is True and kept["queries"] > 500
    arrays = run.samples()
    starts = arrays[f"g0_i{kept['index']}_start_ns"]
    assert starts.size == kept["queries"] and np.all(np.diff(starts) > 0)
    assert not alive(victim) and not any(alive(w) for w in workers)


def test_an_error_in_the_middle_of_a_sweep_leaves_a_partial_run_with_the_groups_before(
        tmp_path):
    r = scaler_cmd("scaling", "--engine", "sleepy", "--model", "tiny", "--placement",
                   "failsattwo", "--instances", "1-3", "--min-duration", "0.5",
                   "--min-queries", "5", "--warmup", "0.1", "--out", str(tmp_path), env=PLUGIN,
                   timeout=120)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "no room for 2 instances" in last and "partial results saved in" in last
    assert "Traceback" not in r.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("scaling-")]
    run = load_run(folder)
    assert run.doc["status"] == "partial"
    assert any("no room for 2 instances" in reason for reason in run.doc["partial_reasons"])
    assert [g["instances"] for g in run.doc["groups"]] == [1]
    assert run.doc["groups"][0]["status"] == "complete"
