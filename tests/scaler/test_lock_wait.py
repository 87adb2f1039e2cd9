"""The measurement lock's refusals and warnings word for word, from registrations the test
writes and holds in this process (see test_lock_folder.py): several holders, a wait that
ends in vain, and dead runs that --no-lock never warns of (pure: no second process)."""

from __future__ import annotations

import os
import time

import pytest

from scaler import lock
from tests.scaler.test_lock_folder import registration


def since(started: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(started))


def test_every_holder_is_named_separated_by_semicolons(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    now = time.time()
    held(registration(folder, "1-1", [0], now - 5, locked=False, command="scaler latency"))
    held(registration(folder, "2-2", [1], now - 7, locked=False, command="scaler scaling"))
    with pytest.raises(lock.LockBusy) as info:
        lock.acquire([0, 1], directory=folder)
    said = str(info.value)
    first = f"pid 4242 (scaler latency, --no-lock) since {since(now - 5)}"
    second = f"pid 4242 (scaler scaling, --no-lock) since {since(now - 7)}"
    names = said.removeprefix("CPUs 0-1 are being measured by ").split(
        "; wait for it with")[0]
    assert sorted(names.split("; ")) == sorted([first, second])


def test_a_wait_that_ends_in_vain_says_to_wait_longer(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    now = time.time()
    held(registration(folder, "1-1", [0], now - 5, locked=False, command="scaler latency"))
    said = []
    with pytest.raises(lock.LockBusy) as info:
        lock.acquire([0], wait_s=0.3, directory=folder, say=said.append)
    holder = f"pid 4242 (scaler latency, --no-lock) since {since(now - 5)}"
    assert str(info.value) == (
        f"CPUs 0 are being measured by {holder}; wait longer with --lock-wait SECONDS, or "
        "measure anyway with --no-lock (both runs then record the overlap)")
    assert said == [f"scaler: waiting up to 0 s: CPUs 0 are being measured by {holder}"]
    assert list(folder.glob("run-*.json")) == [folder / "run-1-1.json"]  # ours removed


def test_no_lock_never_warns_of_a_dead_run_even_one_written_just_now(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    now = time.time()
    dead = registration(folder, "3-3", [0], now - 9)  # nobody holds its file: dead
    os.utime(dead, (now + 60, now + 60))  # written after this run starts
    said = []
    run = lock.acquire([0], no_lock=True, directory=folder, say=said.append)
    try:
        assert said == []
    finally:
        run.release()
