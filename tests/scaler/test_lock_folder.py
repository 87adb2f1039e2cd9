"""The lock folder as a security boundary and a record, from files the test writes.

The folder is shared by every user of the machine, so each refusal it promises gets a test:
a lock or registration file that is a symbolic link is never opened (the file it points to is
left untouched), a registration that is a link or is not one of ours is never believed, and
an overlap, a holder or a stale record is decided from hand-made registrations whose right
answer is known by reading them (times, CPUs, whether a process holds them).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
import time

import pytest

from scaler import lock
from scaler.errors import UsageError

DAY = 86400.0


def my_start_ticks() -> int:
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime


def registration(folder, name, cpus, started, ended=None, locked=True, measuring=True,
                 pid=4242, command="scaler scaling --engine null", **more):
    path = folder / f"run-{name}.json"
    doc = {"pid": pid, "start_ticks": 7, "command": command, "started": started,
           "ended": ended, "cpus": list(cpus), "locked": locked, "measuring": measuring, **more}
    path.write_text(json.dumps(doc))
    return path


def victim(tmp_path):
    path = tmp_path / "precious"
    path.write_text("do not touch")
    path.chmod(0o600)
    return path


def untouched(path):
    return path.read_text() == "do not touch" and (path.stat().st_mode & 0o777) == 0o600


# -- refusals ------------------------------------------------------------------------------

def test_a_cpu_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    target = victim(tmp_path)
    (folder / "cpu1.lock").symlink_to(target)
    with pytest.raises(UsageError) as info:
        lock.acquire([0, 1], directory=folder)
    assert str(info.value) == (f"measurement lock file {folder / 'cpu1.lock'} is a symbolic link: "
                               "refused (the lock folder is shared; remove it); or set "
                               "SCALER_LOCK_DIR")
    assert untouched(target)
    assert list(folder.glob("run-*.json")) == []  # the refused run leaves no registration
    with lock.acquire([0], directory=folder) as other:  # CPU 0's own file is fine
        assert other.mode == "locked"


def test_a_registration_path_that_is_a_symlink_is_refused(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    target = victim(tmp_path)
    mine = folder / f"run-{os.getpid()}-{my_start_ticks()}.json"
    mine.symlink_to(target)
    for no_lock in (False, True):
        with pytest.raises(UsageError, match="is a symbolic link: refused"):
            lock.acquire([0], no_lock=no_lock, directory=folder)
    assert untouched(target)


def test_a_lock_file_that_cannot_be_opened_is_a_usage_error(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    (folder / "cpu0.lock").mkdir()  # a folder where the lock file should be
    with pytest.raises(UsageError) as info:
        lock.acquire([0], directory=folder)
    assert str(info.value) == (f"measurement lock file {folder / 'cpu0.lock'} cannot be opened: "
                               "Is a directory; or set SCALER_LOCK_DIR")


def test_registrations_that_are_links_or_not_ours_are_never_believed(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    outside = registration(tmp_path, "elsewhere", [0], time.time())
    held(outside)  # a live run's record, but reached through a link
    (folder / "run-1-1.json").symlink_to(outside)
    (folder / "run-2-2.json").write_text("{not json")
    (folder / "run-3-3.json").write_text(json.dumps({"pid": 3}))  # keys missing
    registration(folder, "4-4", "x", time.time())  # cpus not numbers
    registration(folder, "5-5", [0], time.time(), pid=None)
    registration(folder, "6-6", [0], "yesterday")
    (folder / "notes.json").write_text("{}")  # not a registration's name
    assert lock.registrations(folder) == []
    with lock.acquire([0], directory=folder) as taken:  # nothing blocks CPU 0
        assert taken.mode == "locked" and taken.waited_for == []


def test_a_live_unlocked_run_blocks_a_locked_one_and_is_named(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    started = time.time() - 5
    held(registration(folder, "9-9", [0, 3], started, locked=False,
                      command="scaler latency --no-lock"))
    since = time.strftime("%H:%M:%S", time.localtime(started))
    said = []
    with pytest.raises(lock.LockBusy) as info:
        lock.acquire([0, 1], directory=folder, say=said.append)
    assert str(info.value) == (
        f"CPUs 0-1 are being measured by pid 4242 (scaler latency --no-lock, --no-lock) since "
        f"{since}; wait for it with --lock-wait SECONDS, or measure anyway with --no-lock "
        "(both runs then record the overlap)")
    assert said == []  # refused at once: no waiting announced
    assert [p.name for p in folder.glob("run-*.json")] == ["run-9-9.json"]
    with lock.acquire([1, 2], directory=folder) as other:  # its CPUs only
        assert other.mode == "locked"


def test_records_that_do_not_block(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    now = time.time()
    held(registration(folder, "1-1", [0], now, locked=True))  # locked, but holds no CPU file
    held(registration(folder, "2-2", [0], now, locked=False, measuring=False))  # waiting
    held(registration(folder, "3-3", [0], now - 9, ended=now - 1, locked=False))  # finished
    registration(folder, "4-4", [0], now, locked=False)  # dead (nobody holds its file)
    with lock.acquire([0], directory=folder) as taken:
        assert taken.mode == "locked"


def test_a_held_cpu_without_a_readable_registration_is_a_run_that_is_starting(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    fd = os.open(folder / "cpu0.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        began = time.time()
        said = []
        with pytest.raises(lock.LockBusy) as info:
            lock.acquire([0], wait_s=0.25, directory=folder, say=said.append)
        since = time.strftime("%H:%M:%S", time.localtime(began))
        message = str(info.value)
        assert message.startswith("CPUs 0 are being measured by pid 0 (a run that is starting) "
                                  "since ")
        assert message[-88:] == ("; wait longer with --lock-wait SECONDS, or measure anyway "
                                 "with --no-lock (both runs then record the overlap)")[-88:]
        assert since <= message.split(" since ")[1][:8]
        assert said and all(line.startswith(  # (again each second: its time is "now")
            "scaler: waiting up to 0 s: CPUs 0 are being measured by pid 0 (a run that is "
            "starting) since ") for line in said)
    finally:
        os.close(fd)


# -- what a run records ------------------------------------------------------------------------

def test_a_run_registers_itself_and_marks_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/lib/scaler/__main__.py", "scaling", "-x" * 70])
    folder = tmp_path / "locks"
    taken = lock.acquire([1, 0], wait_s=2.5, directory=folder)  # the folder is made
    doc = json.loads(taken.me.read_text())
    assert taken.me == folder / f"run-{os.getpid()}-{my_start_ticks()}.json"
    assert doc["pid"] == os.getpid() and doc["start_ticks"] == my_start_ticks()
    assert doc["command"] == ("scaler scaling " + "-x" * 70)[:117] + "..."
    assert len(doc["command"]) == 120
    assert doc["ended"] is None and doc["cpus"] == [0, 1]
    assert doc["locked"] is True and doc["measuring"] is True
    taken.waited_s = 0.12345
    assert taken.describe() == {"mode": "locked", "cpus": "0-1", "directory": str(folder),
                                "lock_wait_s": 2.5, "waited_s": 0.123, "waited_for": [],
                                "overlaps": []}
    taken.release()
    doc = json.loads(taken.me.read_text())
    assert isinstance(doc["ended"], float) and doc["ended"] >= doc["started"]
    assert doc["measuring"] is True  # an ended run still counts for overlaps
    for name in ("cpu0.lock", "cpu1.lock", taken.me.name):  # every user's runs take them
        assert (folder / name).stat().st_mode & 0o777 == 0o666
    taken.release()  # twice is harmless
    unlocked = lock.acquire([0], no_lock=True, directory=folder)
    doc = json.loads(unlocked.me.read_text())
    assert doc["locked"] is False and doc["measuring"] is True
    assert unlocked.describe()["mode"] == "no-lock"
    # the previous run on CPU 0 is over but overlapped nothing of this one
    assert unlocked.overlaps() == []
    unlocked.release()


def test_a_waiting_run_registers_as_not_measuring(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    waiting = lock.MeasurementLock([0], folder, "locked")
    waiting._register()
    try:
        assert json.loads(waiting.me.read_text())["measuring"] is False
    finally:
        waiting.release()


def test_a_run_on_no_cpu_here_takes_no_lock_and_records_so():
    remote = lock.acquire([])
    remote.release()  # nothing to let go of
    assert remote.describe() == {"mode": "remote", "cpus": "", "directory": None,
                                 "lock_wait_s": 0.0, "waited_s": 0.0, "waited_for": [],
                                 "overlaps": []}


def test_who_and_to_dict_read_as_the_user_sees_them(tmp_path):
    started, ended = 1_700_000_000.0, 1_700_000_100.0
    registration(tmp_path, "1-1", [3, 0, 1], started, ended=ended, locked=False)
    (reg,) = lock.registrations(tmp_path)
    assert reg.pid == 4242 and reg.cpus == frozenset({0, 1, 3}) and reg.alive is False
    assert reg.measuring is True and reg.locked is False and reg.ended == ended
    clock = time.strftime("%H:%M:%S", time.localtime(started))
    assert reg.who() == f"pid 4242 (scaler scaling --engine null, --no-lock) since {clock}"
    iso = dt.datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")
    iso_end = dt.datetime.fromtimestamp(ended).astimezone().isoformat(timespec="seconds")
    assert reg.to_dict() == {"pid": 4242, "command": "scaler scaling --engine null",
                             "started": iso, "ended": iso_end, "alive": False, "locked": False,
                             "cpus": "0-1,3"}
    (tmp_path / "run-1-1.json").unlink()
    path = registration(tmp_path, "2-2", [0], started)
    doc = json.loads(path.read_text())
    del doc["measuring"]  # older registrations: measuring
    path.write_text(json.dumps(doc))
    (reg,) = lock.registrations(tmp_path)
    assert reg.measuring is True and reg.to_dict()["ended"] is None
    assert reg.who().startswith("pid 4242 (scaler scaling --engine null) since ")


def test_overlaps_are_other_measuring_runs_on_shared_cpus_in_the_same_time(tmp_path, held):
    folder = tmp_path
    me = lock.MeasurementLock([0, 1], folder, "locked")
    now = time.time()
    me.started = now - 100
    # sorted by name: the ones that do not count come first
    registration(folder, "a-other-cpu", [2], now - 150, ended=now - 10)
    registration(folder, "b-ended-before", [0], now - 300, ended=now - 101)
    registration(folder, "c-waiting", [0], now - 150, ended=now - 10, measuring=False)
    me.me = registration(folder, "d-me", [0, 1], now - 100)
    dead = registration(folder, "e-dead-early", [0], now - 300)
    os.utime(dead, (now - 200, now - 200))  # died (last written) before this run began
    registration(folder, "f-ended-at-start", [1], now - 150, ended=now - 100)
    registration(folder, "g-ended-after", [1, 5], now - 150, ended=now - 50)
    late = registration(folder, "h-dead-late", [0], now - 150)
    os.utime(late, (now - 20, now - 20))
    live = held(registration(folder, "i-live", [0], now - 10))
    os.utime(live, (now - 200, now - 200))  # last written before this run: alive all the same
    registration(folder, "j-future", [0], now + 1000)  # a clock that jumped: not yet started
    names = [r.path.name for r in me.overlaps()]
    assert names == ["run-f-ended-at-start.json", "run-g-ended-after.json",
                     "run-h-dead-late.json", "run-i-live.json"]
    assert lock.MeasurementLock([], folder, "locked").overlaps() == []
    assert lock.MeasurementLock([0], None, "remote").overlaps() == []


def test_sweep_removes_only_old_records_no_live_run_needs(tmp_path, held):
    now = time.time()
    old = registration(tmp_path, "old", [0], now - 9 * DAY, ended=now - 8 * DAY)
    recent = registration(tmp_path, "recent", [0], now - 2 * DAY, ended=now - 1 * DAY)
    needed = registration(tmp_path, "needed", [1], now - 9 * DAY, ended=now - 8 * DAY)
    other_cpu = registration(tmp_path, "other-cpu", [2], now - 9 * DAY, ended=now - 8 * DAY)
    dead = registration(tmp_path, "dead", [0], now - 9 * DAY)
    os.utime(dead, (now - 8 * DAY, now - 8 * DAY))
    dead_recent = registration(tmp_path, "dead-recent", [0], now - 2 * DAY)
    live = held(registration(tmp_path, "live", [1, 3], now - 10 * DAY))  # began before `needed`
    later = held(registration(tmp_path, "later", [2], now - 1))  # began after other-cpu ended
    # a process that ended its run long ago and lives on (a notebook): its record is old
    ended_alive = held(registration(tmp_path, "ended-alive", [4], now - 9 * DAY,
                                    ended=now - 8 * DAY))
    lock.sweep(tmp_path)
    left = {p.name for p in tmp_path.glob("run-*.json")}
    assert left == {p.name for p in (recent, needed, dead_recent, live, later)}
    assert not old.exists() and not other_cpu.exists() and not dead.exists()
    assert not ended_alive.exists()


def test_small_readers():
    assert lock._mtime(lock.Path("/nonexistent/run-1-1.json")) == 0.0
    assert lock._start_ticks(os.getpid()) == my_start_ticks()
    assert lock._start_ticks(2**22 + 12345) == 0  # no such process


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_bad_waits_are_refused_word_for_word(tmp_path, bad):
    with pytest.raises(UsageError) as info:
        lock.acquire([0], wait_s=bad, directory=tmp_path)
    assert str(info.value) == f"--lock-wait must be a number of seconds, at least 0, not {bad}"


def test_the_lock_folder_chosen_made_and_shared(tmp_path, monkeypatch):
    """An explicit folder or SCALER_LOCK_DIR is made (parents too) and left as it is; the
    system folder is shared by every user (mode 1777), and when it cannot be made the
    user's runtime folder takes its place; with neither, one line says what to do."""
    chosen = tmp_path / "a" / "b" / "locks"
    assert lock.lock_dir(chosen) == chosen and chosen.is_dir()
    assert chosen.stat().st_mode & 0o7777 != 0o1777
    monkeypatch.setenv("SCALER_LOCK_DIR", str(tmp_path / "env" / "locks"))
    assert lock.lock_dir() == tmp_path / "env" / "locks"
    assert lock.lock_dir(chosen) == chosen  # the argument wins over the variable
    monkeypatch.delenv("SCALER_LOCK_DIR")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(lock, "SYSTEM_DIR", str(tmp_path / "run" / "scaler"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(blocker))
    system = lock.lock_dir()
    assert system == tmp_path / "run" / "scaler"
    assert system.stat().st_mode & 0o7777 == 0o1777
    monkeypatch.setattr(lock, "SYSTEM_DIR", str(blocker / "scaler"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert lock.lock_dir() == tmp_path / "xdg" / "scaler"
    assert (tmp_path / "xdg" / "scaler").stat().st_mode & 0o7777 == 0o1777
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with pytest.raises(UsageError) as info:
        lock.lock_dir()
    assert str(info.value) == (f"no folder for the measurement lock ({blocker / 'scaler'}: Not "
                               "a directory): set SCALER_LOCK_DIR to a writable folder, or give "
                               "--no-lock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(blocker))
    with pytest.raises(UsageError) as info:
        lock.lock_dir()
    assert str(info.value) == (f"no folder for the measurement lock ({blocker / 'scaler'}: Not "
                               f"a directory; {blocker / 'scaler'}: Not a directory): set "
                               "SCALER_LOCK_DIR to a writable folder, or give --no-lock")


def test_no_lock_warns_of_each_live_run_on_its_cpus(tmp_path, held):
    folder = tmp_path / "locks"
    folder.mkdir()
    now = time.time()
    held(registration(folder, "1-1", [0, 3], now - 5, command="scaler scaling"))
    held(registration(folder, "2-2", [0], now - 9, ended=now - 1))  # over
    registration(folder, "3-3", [1], now - 9)  # dead
    registration(folder, "4-4", [5], now - 9)  # other CPUs
    said = []
    run = lock.acquire([0, 1], no_lock=True, directory=folder, say=said.append)
    since = time.strftime("%H:%M:%S", time.localtime(now - 5))
    assert said == [f"scaler: warning: --no-lock: CPUs 0 are being measured by pid 4242 "
                    f"(scaler scaling) since {since}; both runs' timings will be disturbed "
                    "(each run.json lists the other)"]
    assert run.mode == "no-lock" and run.waited_for == []
    run.release()


def test_a_run_waits_for_a_holder_that_ends_and_records_whom_it_waited_for(tmp_path):
    import threading

    folder = tmp_path / "locks"
    folder.mkdir()
    started = time.time() - 5
    path = registration(folder, "1-1", [0], started, locked=False, command="scaler latency")
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ends = threading.Timer(0.3, os.close, (fd,))  # the holder's process ends
    said = []
    began = time.monotonic()
    ends.start()
    try:
        run = lock.acquire([0], wait_s=30.0, directory=folder, say=said.append)
    finally:
        ends.join()
    waited = time.monotonic() - began
    since = time.strftime("%H:%M:%S", time.localtime(started))
    holder = f"pid 4242 (scaler latency, --no-lock) since {since}"
    assert said == [f"scaler: waiting up to 30 s: CPUs 0 are being measured by {holder}"]
    iso = dt.datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")
    assert run.waited_for == [{"pid": 4242, "command": "scaler latency", "started": iso,
                               "ended": None, "alive": True, "locked": False, "cpus": "0"}]
    assert 0.0 < run.waited_s <= waited  # (how long depends on the machine: not pinned)
    assert run.started >= time.time() - waited  # the run's window starts after the wait
    doc = json.loads(run.me.read_text())
    assert doc["measuring"] is True and doc["ended"] is None
    assert run.describe()["waited_for"] == run.waited_for
    run.release()


@pytest.mark.parametrize("argv, command", [
    ([], "?"),
    (["/usr/bin/scaler", "latency"], "scaler latency"),
    (["/x/bench", "a"], "bench a"),
    (["__main__.py", "x" * 113], "scaler " + "x" * 113),  # 120 characters: kept whole
    (["__main__.py", "x" * 114], "scaler " + "x" * 110 + "..."),
])
def test_the_command_a_registration_shows(monkeypatch, argv, command):
    monkeypatch.setattr(sys, "argv", argv)
    assert lock._command() == command
