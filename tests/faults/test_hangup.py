"""The terminal closes under a run (SIGHUP through a real pseudo-terminal), or the coordinator
dies without recording its end: nothing measured is lost, and every reader says the run is
partial and why; the next command writing into the folder corrects its file."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

from tests.faults.conftest import NULL, PLUGIN, SLEEPY, run_folder, wait_saved
from tests.scaler.helpers import ROOT, alive, scaler_cmd
from tests.scaler.targets.conftest import descendants, wait_gone

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _controlling_tty() -> None:  # in the child, after setsid: the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(master: int, text: str, timeout_s: float) -> str:
    """What the terminal showed until ``text`` appeared (rich's live lines, codes removed)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    os.set_blocking(master, False)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        except OSError:  # EIO: the other side closed (the run ended)
            break
        seen += chunk
        shown = ANSI.sub(b"", seen).decode(errors="replace")
        if text in shown:
            return shown
    pytest.fail(f"no {text!r} on the terminal within {timeout_s:g} s:\n"
                + ANSI.sub(b"", seen).decode(errors="replace")[-2000:])


def test_a_closed_terminal_keeps_the_group_in_measurement(tmp_path):
    out = tmp_path / "out"
    master, slave = os.openpty()
    env = {**os.environ, **PLUGIN, "TF_CPP_MIN_LOG_LEVEL": "2", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaler", "scaling", "--instances", "1-3", "--placement",
         "pinned", *SLEEPY, "--min-duration", "1.5", "--out", str(out)],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=_controlling_tty, cwd=ROOT, env=env)
    os.close(slave)
    tree: set[int] = set()
    try:
        _read_until(master, "x2 batch 1: measuring for", timeout_s=150)
        time.sleep(0.3)  # some queries of the group in measurement (1.2 s left of its 1.5)
        tree = descendants(proc.pid)
        os.close(master)  # the terminal is gone: the kernel sends SIGHUP to its session
        master = -1
        code = proc.wait(60)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert code == 129
    assert not wait_gone(tree, 5)  # no worker outlives it
    folder = run_folder(out)
    doc = json.loads((folder / "run.json").read_text())
    assert doc["status"] == "partial"
    assert doc["partial_reasons"][-1].startswith("hung up (SIGHUP: the terminal closed) during")
    groups = doc["groups"]
    # every group before the one in measurement is kept, complete; the one in measurement
    # is kept too, with what its workers measured until the hangup
    assert len(groups) >= 2
    assert [g["status"] for g in groups[:-1]] == ["complete"] * (len(groups) - 1)
    last = groups[-1]
    assert last["status"] == "partial" and doc["partial_reasons"][-1].endswith(last["label"])
    with np.load(folder / "samples" / f"g{last['id']}.npz") as samples:
        for inst in last["per_instance"]:
            starts = samples[f"g{last['id']}_i{inst['index']}_start_ns"]
            assert inst["queries"] > 0 and len(starts) == inst["queries"]
    shown = scaler_cmd("show", "--json", str(folder), timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "partial"


def test_a_coordinator_gone_reads_partial_everywhere_and_the_next_run_corrects_it(
        tmp_path, start):
    out = tmp_path / "out"
    run = start("scaling", "--instances", "1-2", "--placement", "pinned", *NULL,
                "--min-duration", "30", "--out", str(out))
    run.wait_line("measuring", timeout_s=120, count=2)
    wait_saved(out, 1, 30)
    tree = run.tree()
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(10)
    wait_gone(tree, 5)
    folder = run_folder(out)
    assert json.loads((folder / "run.json").read_text())["status"] == "running"
    # show, export and capacity all take it as partial, saying the coordinator is gone
    shown = scaler_cmd("show", "--json", str(folder), timeout=60)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["status"] == "partial"
    assert any(r.startswith("coordinator gone (pid") for r in summary["partial_reasons"])
    exported = scaler_cmd("export", str(folder), "--out", str(tmp_path / "x"), timeout=60)
    assert exported.returncode == 0, exported.stderr
    with open(next((tmp_path / "x").rglob("groups.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["run_status"] == "partial" for r in rows)
    assert "coordinator gone" in rows[0]["run_partial_reasons"]
    # the next run into the same folder rewrites the stale file
    again = scaler_cmd("latency", "--placement", "pinned", *NULL, "--min-duration", "0",
                       "--warmup", "0", "--out", str(out), timeout=120)
    assert again.returncode == 0, again.stderr
    fixed = json.loads((folder / "run.json").read_text())
    assert fixed["status"] == "partial"
    assert fixed["partial_reasons"][-1].startswith("coordinator gone (pid")
    assert fixed["summary"]["status"] == "partial"
    assert [g["instances"] for g in fixed["groups"]] == [1]


def test_a_live_run_is_not_taken_for_a_gone_one(tmp_path, start):
    out = tmp_path / "out"
    run = start("latency", "--placement", "pinned", *NULL, "--min-duration", "30",
                "--out", str(out))
    run.wait_line("measuring", timeout_s=120)
    # a running run saves only after its first group: write its state as it would be seen
    from scaler.runstate import effective
    from scaler.session import process_start

    doc = {"status": "running", "writer": {
        "pid": run.proc.pid, "started": process_start(run.proc.pid),
        "hostname": os.uname().nodename, "boot_id": open(
            "/proc/sys/kernel/random/boot_id").read().strip()}}
    assert alive(run.proc.pid)
    assert effective(doc, None)["status"] == "running"
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(10)
    assert effective(doc, None)["status"] == "partial"
