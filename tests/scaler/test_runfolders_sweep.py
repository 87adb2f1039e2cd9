"""Run folder names and the sweep of what dead writers left (``scaler.runfolders``), from
folders, claims and pids the test sets up: which leftovers go and which stay (a live
process's, a folder the sweep must not enter, one too deep), the claim file's mode and the
refusal when the results folder cannot be written. No process is started: a dead writer is
a pid over the kernel's largest (2^22), a live one this process's parent or init (pid 1)."""

from __future__ import annotations

import os

import pytest

from scaler import runfolders
from scaler.errors import ResultsWriteError

DEAD = 2**22 + 1  # over pid_max's upper limit: no process has it
INIT = 1  # always alive


def stale(folder, pid: int = DEAD, name: str = "scaling-1"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.tmp-{pid}"
    path.write_text("half")
    return path


def test_a_claim_that_names_no_process_is_swept(tmp_path):
    """Claims whose content is empty, not a number, or pid 0 name no writer: swept (pid 0
    is not a process, though signalling 0 reaches this process's group)."""
    claims = [tmp_path / f".scaling-{k}.claim" for k in range(3)]
    for claim, text in zip(claims, ["", "abc\n", "0\n"], strict=True):
        claim.write_text(text)
    assert sorted(runfolders.sweep_stale(tmp_path)) == sorted(claims)
    assert list(tmp_path.iterdir()) == []


def test_what_a_live_process_writes_stays_even_pid_1(tmp_path):
    """A temporary folder of pid 1 (init, alive) and a claim of this process's parent (alive)
    stay; a dead pid's temporary file goes."""
    live = [stale(tmp_path, INIT), tmp_path / ".scaling-2.claim"]
    live[1].write_text(f"{os.getppid()}\n")
    dead = stale(tmp_path, DEAD, "scaling-3")
    assert runfolders.sweep_stale(tmp_path) == [dead]
    assert sorted(tmp_path.iterdir()) == sorted(live)


def test_another_users_live_process_counts_as_alive():
    """A process this user may not signal (the kernel says EPERM) is alive, not dead: as
    root, checked with the user id switched to nobody's for the call (the parent is root's);
    otherwise pid 1, when another user runs it."""
    if os.geteuid() == 0:
        os.setresuid(65534, 65534, 0)
        try:
            alive = runfolders._alive(os.getppid())
        finally:
            os.setresuid(0, 0, 0)
    else:
        if os.stat("/proc/1").st_uid == os.getuid():
            pytest.skip("pid 1 runs as this user: no other user's process to probe")
        alive = runfolders._alive(1)
    assert alive is True
    assert runfolders._alive(DEAD) is False


def test_the_sweep_enters_run_suite_and_samples_folders_three_levels_deep(tmp_path):
    """Three levels (out, a suite, a run, its samples): leftovers there go. A fourth level
    (a suite in a suite in a suite in a suite) is not entered, nor a folder that is not a
    run, suite or samples folder, nor a symlink to a suite."""
    swept = [stale(tmp_path / "suite-a"), stale(tmp_path / "suite-a" / "suite-b"),
             stale(tmp_path / "suite-a" / "suite-b" / "suite-c")]
    (tmp_path / "suite-a" / "scaling-2").mkdir()
    (tmp_path / "suite-a" / "scaling-2" / "run.json").write_text("{}")
    swept.append(stale(tmp_path / "suite-a" / "scaling-2" / "samples"))
    kept = [stale(tmp_path / "suite-a" / "suite-b" / "suite-c" / "suite-d"),
            stale(tmp_path / "other"), stale(tmp_path / "elsewhere" / "suite-x")]
    (tmp_path / "suite-link").symlink_to(tmp_path / "elsewhere" / "suite-x")
    assert sorted(runfolders.sweep_stale(tmp_path)) == sorted(swept)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in swept)


def test_a_claim_is_a_file_of_mode_644_holding_this_pid(tmp_path):
    """With no umask, the claim of a new name is rw-r--r-- and holds this process's pid."""
    old = os.umask(0)
    try:
        path = runfolders.new_run_path(tmp_path, "latency")
    finally:
        os.umask(old)
    claim = runfolders.claim_path(path)
    assert claim.stat().st_mode & 0o777 == 0o644
    assert claim.read_text() == f"{os.getpid()}\n"


def test_a_results_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path):
    """A results folder that does not exist: the claim cannot be created, and the error
    names the folder and the system's reason."""
    out = tmp_path / "missing"
    with pytest.raises(ResultsWriteError) as caught:
        runfolders.new_run_path(out, "scaling")
    assert str(caught.value) == \
        f"cannot write in the results folder {out}: No such file or directory"
