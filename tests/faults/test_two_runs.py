"""Two ``scaler`` runs at once on the same CPUs: the second refuses naming the first, or
waits for it (``--lock-wait``) saying whom it waits for, or with ``--no-lock`` measures anyway
and both runs record the overlap. Runs started in the same second never share a folder."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import PLUGIN, SLEEPY
from tests.scaler.helpers import scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def run_doc(stdout: str) -> dict:
    return json.loads((Path(json.loads(stdout)["run"]) / "run.json").read_text())


def test_a_second_run_refuses_waits_or_records_the_overlap(tmp_path, start):
    locks = tmp_path / "locks"
    env = {**PLUGIN, "SCALER_LOCK_DIR": str(locks)}
    quick = ["--placement", "pinned", *SLEEPY, "--min-duration", "0.1", "--warmup", "0",
             "--json"]
    # the first run measures until the test interrupts it (not for a time the others must
    # fit in: how long they take depends on the machine)
    first = start("latency", "--placement", "pinned", *SLEEPY, "--min-duration", "500",
                  "--out", str(tmp_path / "a"), "--json", env=env)
    first.wait_line("measuring", timeout_s=120)

    refused = scaler_cmd("latency", *quick, "--out", str(tmp_path / "b"), env=env, timeout=60)
    assert refused.returncode == 75, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(
        rf"scaler: error: CPUs [-0-9,]+ are being measured by pid {first.proc.pid} "
        r"\(scaler latency .*\) since \d\d:\d\d:\d\d; wait for it with --lock-wait", lines[0])
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())

    unlocked = scaler_cmd("latency", *quick, "--no-lock", "--out", str(tmp_path / "d"),
                          env=env, timeout=120)
    assert unlocked.returncode == 0, unlocked.stderr
    assert "--no-lock: CPUs" in unlocked.stderr and f"pid {first.proc.pid}" in unlocked.stderr
    d_lock = run_doc(unlocked.stdout)["lock"]
    assert d_lock["mode"] == "no-lock"
    assert [o["pid"] for o in d_lock["overlaps"]] == [first.proc.pid]

    waiting = start("latency", *quick, "--lock-wait", "120", "--out", str(tmp_path / "c"),
                    env=env)
    said = waiting.wait_line("scaler: waiting up to", timeout_s=60)
    assert f"measured by pid {first.proc.pid}" in said
    assert first.proc.poll() is None, "the first run ended before the test interrupted it"
    first.proc.send_signal(signal.SIGINT)
    code_a, out_a, err_a = first.finish(timeout_s=120)
    assert code_a == 130, err_a  # interrupted: its partial run keeps the overlap record
    code_c, out_c, err_c = waiting.finish(timeout_s=120)
    assert code_c == 0, err_c
    c_lock = run_doc(out_c)["lock"]
    assert [w["pid"] for w in c_lock["waited_for"]] == [first.proc.pid]
    assert c_lock["waited_s"] > 0 and c_lock["overlaps"] == []

    a_doc = run_doc(out_a)
    overlaps = a_doc["lock"]["overlaps"]
    assert [o["command"].split()[:2] for o in overlaps] == [["scaler", "latency"]]
    assert overlaps[0]["locked"] is False  # the --no-lock run, and not the one that waited
    assert "another run measured on these CPUs meanwhile" in err_a


def test_runs_started_together_into_one_folder_keep_their_own(tmp_path, start):
    env = {**PLUGIN, "SCALER_LOCK_DIR": str(tmp_path / "locks")}
    out = tmp_path / "out"
    runs = [start("latency", "--placement", "pinned", *SLEEPY, "--min-duration", "1",
                  "--no-lock", "--out", str(out), "--json", env=env) for _ in range(3)]
    docs = []
    for run in runs:
        code, stdout, err = run.finish(timeout_s=120)
        assert code == 0, err
        docs.append(json.loads(stdout)["run"])
    assert len(set(docs)) == 3  # one folder each, even within one second
    for path in docs:
        doc = json.loads((Path(path) / "run.json").read_text())
        assert doc["status"] == "complete" and len(doc["groups"]) == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no claim left
