"""The measurement lock between real processes: one run at a time on a CPU, a dead holder
releases it, waiting says whom for, and --no-lock overlaps are recorded on both sides."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scaler import lock
from scaler.errors import UsageError
from tests.scaler.helpers import ROOT

HOLD = """
import json, sys, time
from scaler import lock
cpus, wait, no_lock, hold_s = json.loads(sys.argv[1])
held = lock.acquire(cpus, wait, no_lock, say=lambda m: print(m, file=sys.stderr, flush=True))
print(json.dumps({"event": "held", "waited_s": held.waited_s}), flush=True)
time.sleep(hold_s)
print(json.dumps({"event": "describe", "lock": held.describe()}), flush=True)
held.release()
"""


def holder(folder, cpus, hold_s=60.0, wait=0.0, no_lock=False, argv0="scaler-test-holder"):
    """A separate process that takes the lock and holds it for ``hold_s``."""
    env = {**os.environ, "SCALER_LOCK_DIR": str(folder)}
    return subprocess.Popen([sys.executable, "-c", HOLD, json.dumps([cpus, wait, no_lock,
                                                                     hold_s])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


def wait_held(proc, timeout_s=30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    line = proc.stdout.readline()
    assert time.monotonic() < deadline and line, proc.stderr.read()
    message = json.loads(line)
    assert message["event"] == "held"
    return message


def stop(proc) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_a_second_run_on_a_taken_cpu_is_refused_naming_the_holder(tmp_path):
    a = holder(tmp_path, [0, 1])
    try:
        wait_held(a)
        with pytest.raises(lock.LockBusy) as info:
            lock.acquire([1], directory=tmp_path)
        message = str(info.value)
        assert info.value.exit_code == 75 and "\n" not in message
        assert f"CPUs 1 are being measured by pid {a.pid} (" in message
        assert "--lock-wait" in message and "--no-lock" in message
        with lock.acquire([2, 3], directory=tmp_path) as other:  # other CPUs are free
            assert other.mode == "locked"
    finally:
        stop(a)


def test_a_dead_holder_releases_its_cpus_at_once(tmp_path):
    a = holder(tmp_path, [0])
    wait_held(a)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    began = time.monotonic()
    with lock.acquire([0], directory=tmp_path) as held:
        assert held.mode == "locked" and held.waited_for == []
    assert time.monotonic() - began < 2.0
    # and its registration now reads as a dead run's, not a live one's
    (reg,) = [r for r in lock.registrations(tmp_path) if r.pid == a.pid]
    assert not reg.alive


def test_waiting_says_whom_for_and_takes_the_cpus_when_they_are_free(tmp_path):
    a = holder(tmp_path, [0], hold_s=1.5)
    try:
        wait_held(a)
        said: list[str] = []
        with lock.acquire([0], wait_s=30, directory=tmp_path, say=said.append) as held:
            assert a.wait(10) == 0  # it had to finish first
            assert 0.5 < held.waited_s < 30
            assert [w["pid"] for w in held.waited_for] == [a.pid]
            assert len(said) == 1 and said[0].startswith("scaler: waiting up to 30 s: CPUs 0 "
                                                         f"are being measured by pid {a.pid}")
            assert held.describe()["overlaps"] == []  # a waited-for run does not overlap
    finally:
        stop(a)


def test_waiting_too_long_is_refused(tmp_path):
    a = holder(tmp_path, [0])
    try:
        wait_held(a)
        began = time.monotonic()
        with pytest.raises(lock.LockBusy, match="wait longer with --lock-wait"):
            lock.acquire([0], wait_s=0.6, directory=tmp_path)
        assert 0.5 < time.monotonic() - began < 5
    finally:
        stop(a)


def test_no_lock_overlaps_are_recorded_by_both_runs(tmp_path):
    """A locked run A and a --no-lock run B on a shared CPU: B says so when it starts, and
    both list the other under overlaps, also after B has ended."""
    a = holder(tmp_path, [0, 1], hold_s=4.0)
    try:
        wait_held(a)
        b = holder(tmp_path, [1], hold_s=0.5, no_lock=True)
        wait_held(b)
        b_doc = json.loads(b.stdout.readline())["lock"]
        assert b.wait(10) == 0
        assert "--no-lock: CPUs 1 are being measured by pid" in b.stderr.read()
        assert b_doc["mode"] == "no-lock"
        assert [o["pid"] for o in b_doc["overlaps"]] == [a.pid]
        a_doc = json.loads(a.stdout.readline())["lock"]  # described after B ended
        assert a.wait(10) == 0
        (seen,) = a_doc["overlaps"]
        assert seen["pid"] == b.pid and seen["locked"] is False and seen["ended"] is not None
    finally:
        stop(a)


def test_a_locked_run_does_not_start_while_an_unlocked_one_measures(tmp_path):
    b = holder(tmp_path, [0], no_lock=True)
    try:
        wait_held(b)
        with pytest.raises(lock.LockBusy, match=f"pid {b.pid} .*--no-lock"):
            lock.acquire([0], directory=tmp_path)
    finally:
        stop(b)


def test_no_cpus_here_takes_no_lock(tmp_path):
    held = lock.acquire([], directory=tmp_path)
    assert held.describe()["mode"] == "remote" and not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_wait_is_a_usage_error(tmp_path, bad):
    with pytest.raises(UsageError, match="--lock-wait"):
        lock.acquire([0], wait_s=bad, directory=tmp_path)


def test_the_cpus_a_run_measures_come_from_its_placements():
    from affinity import read_topology
    from scaler.settings import Settings

    topo = read_topology()
    usable = frozenset(topo.usable_cpus)
    assert lock.run_cpus(Settings(placements=("shared",), instances=(1,)), topo) == usable
    pinned = lock.run_cpus(Settings(placements=("pinned",), instances=(1,)), topo)
    assert pinned and pinned <= usable
    assert lock.run_cpus(Settings(placements=("pinned",), hosts_file="h.toml"), topo) == set()


def test_a_lock_folder_that_cannot_be_made_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="no folder for the measurement lock"):
        lock.acquire([0], directory=blocker / "locks")
