"""The measurement lock: one run at a time on a CPU, and every overlap on record.

Two runs measuring on the same CPUs disturb each other's timings, and neither would know. A
run therefore locks the CPUs it measures before its first worker starts, and holds them
until its last group is saved:

- **Per-CPU lock files** (``cpuN.lock``) in a folder shared by every user of the machine
  (``$SCALER_LOCK_DIR``, else ``/run/scaler``, else ``$XDG_RUNTIME_DIR/scaler``), taken with
  ``flock``: the kernel releases them when the holder dies, however it dies, so there is
  never a stale lock to remove by hand. A run takes all of its CPUs or none.
- **Registrations** (``run-PID-START.json``): who measures where. Every run writes one (pid,
  process start time, command, start and end time, CPUs, whether it locked) and holds an
  ``flock`` on it while it lives, so others can tell a live run from a dead one, and a
  recycled pid from the original.
- A run whose CPUs are taken waits up to ``--lock-wait`` seconds, saying whom it waits for,
  then refuses with one line naming the holder (:class:`LockBusy`).
- ``--no-lock`` skips the waiting, not the record: the run registers as unlocked, and both
  it and every locked run it overlapped list each other under ``lock.overlaps`` in their
  ``run.json`` (checked at every save), so results of overlapping runs are never silently
  interleaved. A locked run does not start while an unlocked one measures on its CPUs.

Runs whose workers are all on ``--hosts`` machines measure no CPU of this one and take no
lock here (recorded as ``mode: remote``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist
from scaler.errors import ScalerError, UsageError

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.settings import Settings

ENV_DIR = "SCALER_LOCK_DIR"
SYSTEM_DIR = "/run/scaler"
POLL_S = 0.2  # how often a waiting run tries again (before any worker starts)
KEEP_FINISHED_S = 7 * 86400  # registrations of finished runs no live run overlaps: removed


class LockBusy(ScalerError):
    """The CPUs of the run are being measured by another run (exit code 75: try again)."""

    exit_code = 75  # EX_TEMPFAIL


@dataclass(frozen=True)
class Registration:
    """One run as its registration file describes it."""

    path: Path
    pid: int
    start_ticks: int  # the process's start time in clock ticks since boot (/proc/PID/stat)
    command: str
    started: float  # wall clock, seconds
    ended: float | None
    cpus: frozenset[int]
    locked: bool
    measuring: bool  # False while it waits for the lock
    alive: bool

    def who(self) -> str:
        since = _dt.datetime.fromtimestamp(self.started).strftime("%H:%M:%S")
        how = "" if self.locked else ", --no-lock"
        return f"pid {self.pid} ({self.command}{how}) since {since}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "command": self.command, "started": _iso(self.started),
                "ended": _iso(self.ended) if self.ended else None,
                "alive": self.alive, "locked": self.locked,
                "cpus": format_cpulist(sorted(self.cpus))}


class MeasurementLock:
    """The CPUs one run holds (or, with ``--no-lock``, measures without holding)."""

    def __init__(self, cpus: Iterable[int], directory: Path | None, mode: str,
                 wait_s: float = 0.0) -> None:
        self.cpus = frozenset(cpus)
        self.directory = directory
        self.mode = mode  # locked, no-lock, remote
        self.wait_s = wait_s
        self.waited_s = 0.0
        self.waited_for: list[dict[str, Any]] = []
        self.started = time.time()
        self.me: Path | None = None
        self._files: list[int] = []
        self._reg_fd: int | None = None

    # -- what run.json records -----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ``lock`` entry of run.json: mode, CPUs, who was waited for, and every other
        run that measured on these CPUs while this one did (read afresh at every save)."""
        out: dict[str, Any] = {
            "mode": self.mode, "cpus": format_cpulist(sorted(self.cpus)),
            "directory": str(self.directory) if self.directory else None,
            "lock_wait_s": self.wait_s, "waited_s": round(self.waited_s, 3),
            "waited_for": self.waited_for,
            "overlaps": [r.to_dict() for r in self.overlaps()],
        }
        return out

    def overlaps(self) -> list[Registration]:
        """Other runs on any of these CPUs whose time overlapped this run's."""
        if self.directory is None or not self.cpus:
            return []
        now = time.time()
        found = []
        for reg in registrations(self.directory):
            if reg.path == self.me or not reg.cpus & self.cpus or not reg.measuring:
                continue
            end = reg.ended if reg.ended is not None else (now if reg.alive else _mtime(reg.path))
            if reg.started <= now and end >= self.started:
                found.append(reg)
        return found

    # -- taking and releasing ------------------------------------------------------------

    def _register(self) -> None:
        assert self.directory is not None
        ticks = _start_ticks(os.getpid())
        self.me = self.directory / f"run-{os.getpid()}-{ticks}.json"
        fd = _open(self.me)
        fcntl.flock(fd, fcntl.LOCK_EX)  # ours while we live: others probe it to see we do
        self._reg_fd = fd
        self._write_registration(None, measuring=self.mode != "locked")

    def _write_registration(self, ended: float | None, measuring: bool = True) -> None:
        assert self._reg_fd is not None
        data = json.dumps({"pid": os.getpid(), "start_ticks": _start_ticks(os.getpid()),
                           "command": _command(), "started": self.started, "ended": ended,
                           "cpus": sorted(self.cpus), "locked": self.mode == "locked",
                           "measuring": measuring})
        raw = data.encode()
        os.pwrite(self._reg_fd, raw.ljust(max(len(raw), os.fstat(self._reg_fd).st_size)), 0)
        os.ftruncate(self._reg_fd, len(raw))  # never empty while rewritten

    def _try_lock(self) -> list[Registration]:
        """Take every CPU's lock or none; [] when taken, else who holds them."""
        assert self.directory is not None
        taken: list[int] = []
        busy = False
        try:
            for cpu in sorted(self.cpus):
                fd = _open(self.directory / f"cpu{cpu}.lock")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    busy = True
                    break
                taken.append(fd)
        except UsageError:  # a lock file refused: let go of those taken
            for fd in taken:
                os.close(fd)
            raise
        # live runs on our CPUs, locked or not (an unlocked run holds no lock file)
        others = [r for r in registrations(self.directory)
                  if r.path != self.me and r.alive and r.measuring and r.ended is None
                  and r.cpus & self.cpus and (busy or not r.locked)]
        if not busy and not others:
            self._files = taken
            return []
        for fd in taken:
            os.close(fd)
        return others or [_unknown_holder(self.cpus)]

    def release(self) -> None:
        """Drop the CPU locks and mark the registration ended (kept for overlap checks)."""
        for fd in self._files:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files = []
        if self._reg_fd is not None:
            with contextlib.suppress(OSError):
                self._write_registration(time.time())
            with contextlib.suppress(OSError):
                os.close(self._reg_fd)
            self._reg_fd = None

    def __enter__(self) -> MeasurementLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def acquire(cpus: Iterable[int], wait_s: float = 0.0, no_lock: bool = False,
            directory: str | Path | None = None,
            say: Callable[[str], None] = lambda _: None) -> MeasurementLock:
    """Lock ``cpus`` for a run (see the module doc); LockBusy when they stay taken for
    ``wait_s`` seconds. ``say`` receives the lines a user should read (whom we wait for)."""
    if wait_s < 0 or wait_s != wait_s or wait_s == float("inf"):
        raise UsageError(f"--lock-wait must be a number of seconds, at least 0, not {wait_s}")
    cpus = frozenset(cpus)
    if not cpus:
        return MeasurementLock(cpus, None, "remote")
    folder = lock_dir(directory)
    lock = MeasurementLock(cpus, folder, "no-lock" if no_lock else "locked", wait_s)
    sweep(folder)
    if no_lock:
        lock._register()
        busy = [r for r in lock.overlaps() if r.alive and r.ended is None]
        for reg in busy:
            say(f"scaler: warning: --no-lock: CPUs {format_cpulist(sorted(reg.cpus & cpus))} "
                f"are being measured by {reg.who()}; both runs' timings will be disturbed "
                "(each run.json lists the other)")
        return lock
    began = time.monotonic()
    announced: list[str] = []
    lock._register()
    try:
        while holders := lock._try_lock():
            names = [h.who() for h in holders]
            waited = time.monotonic() - began
            what = (f"CPUs {format_cpulist(sorted(cpus))} are being measured by "
                    f"{'; '.join(names)}")
            for h in holders:
                if h.pid and h.to_dict() not in lock.waited_for:
                    lock.waited_for.append(h.to_dict())
            if waited >= wait_s:
                hint = ("wait longer with --lock-wait SECONDS" if wait_s else
                        "wait for it with --lock-wait SECONDS")
                raise LockBusy(f"{what}; {hint}, or measure anyway with --no-lock (both "
                               "runs then record the overlap)")
            if names != announced:
                say(f"scaler: waiting up to {wait_s - waited:.0f} s: {what}")
                announced = names
            time.sleep(min(POLL_S, wait_s - waited))
    except BaseException:
        lock.release()
        if lock.me is not None:
            with contextlib.suppress(OSError):
                lock.me.unlink()  # never measured: nothing to record
        raise
    lock.waited_s = time.monotonic() - began
    lock.started = time.time()  # the window others may overlap starts now, not while waiting
    lock._write_registration(None, measuring=True)
    return lock


def run_cpus(settings: Settings, topology: Topology) -> frozenset[int]:
    """Every CPU of this machine a run's groups would measure on, each as the session plans
    it (``scaler.groupcpus``), every usable CPU for a group its placement refuses to plan;
    on a fleet, what it says (none for --hosts machines or a Slurm allocation)."""
    from scaler import fleets, placements
    from scaler.groupcpus import group_cpus

    remote = fleets.lock_cpus(settings, topology)
    if remote is not None:  # a fleet: the CPUs of this machine it measures (usually none)
        return remote
    usable = frozenset(topology.usable_cpus)
    cpus: set[int] = set()
    for name in settings.placements:
        placement = placements.get(name).configured(settings)  # with the run's options
        for n in settings.instances:
            try:
                cpus.update(group_cpus(placement, topology, n, smt=settings.smt,
                                       cores_per_instance=settings.cores_per_instance,
                                       oversubscribe=settings.oversubscribe) or ())
            except ScalerError:  # that group will say so when its turn comes: lock them all
                cpus.update(usable)
            if cpus >= usable:
                return frozenset(cpus)  # every CPU already: no need to plan further
    return frozenset(cpus)


def lock_dir(directory: str | Path | None = None) -> Path:
    """Where the locks live: ``directory``, ``$SCALER_LOCK_DIR``, ``/run/scaler`` (shared
    by every user: mode 1777), else ``$XDG_RUNTIME_DIR/scaler`` (this user's runs only)."""
    chosen = directory or os.environ.get(ENV_DIR)
    candidates = [Path(chosen)] if chosen else [Path(SYSTEM_DIR)]
    if not chosen and os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "scaler")
    problems = []
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder.stat().st_uid == os.geteuid() and not chosen:
                os.chmod(folder, 0o1777)  # every user's runs lock the same CPUs
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
            problems.append(f"{folder}: not writable")
        except OSError as exc:
            problems.append(f"{folder}: {exc.strerror or exc}")
    raise UsageError(f"no folder for the measurement lock ({'; '.join(problems)}): set "
                     f"{ENV_DIR} to a writable folder, or give --no-lock")


def registrations(folder: Path) -> list[Registration]:
    out = []
    for path in sorted(folder.glob("run-*.json")):
        reg = _read(path)
        if reg is not None:
            out.append(reg)
    return out


def sweep(folder: Path) -> None:
    """Remove registrations of finished runs that no live run overlapped, once old; and
    those of runs that never wrote one (died while registering)."""
    regs = registrations(folder)
    live = [r for r in regs if r.alive and r.ended is None]
    now = time.time()
    for reg in regs:
        if reg.alive and reg.ended is None:
            continue
        end = reg.ended if reg.ended is not None else _mtime(reg.path)
        needed = any(other.started <= end and other.cpus & reg.cpus for other in live)
        if not needed and now - end > KEEP_FINISHED_S:
            with contextlib.suppress(OSError):
                reg.path.unlink()


# -- helpers ---------------------------------------------------------------------------------

def _open(path: Path) -> int:
    """A lock or registration file, never through a symlink (the folder is shared)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        why = ("is a symbolic link: refused (the lock folder is shared; remove it)"
               if exc.errno == errno.ELOOP else f"cannot be opened: {exc.strerror or exc}")
        raise UsageError(f"measurement lock file {path} {why}; or set {ENV_DIR}") from None
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # other users' runs take the same locks
    return fd


def _read(path: Path) -> Registration | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            alive = False  # nobody holds it: its run is gone
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            alive = True
        raw = os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        d = json.loads(raw)
        return Registration(path, int(d["pid"]), int(d["start_ticks"]), str(d["command"]),
                            float(d["started"]),
                            None if d.get("ended") is None else float(d["ended"]),
                            frozenset(int(c) for c in d["cpus"]), bool(d["locked"]),
                            bool(d.get("measuring", True)), alive)
    except (ValueError, KeyError, TypeError):
        return None  # being written, or not ours


def _unknown_holder(cpus: frozenset[int]) -> Registration:
    """A lock held by a run whose registration cannot be read (being written)."""
    return Registration(Path(), 0, 0, "a run that is starting", time.time(), None, cpus, True,
                        True, True)


def _start_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _command() -> str:
    name = Path(sys.argv[0]).name if sys.argv else "?"
    text = " ".join(["scaler" if name == "__main__.py" else name, *sys.argv[1:]])
    return text if len(text) <= 120 else text[:117] + "..."


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")
