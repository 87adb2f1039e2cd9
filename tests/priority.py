"""The CPU priority of the tests beside the serial group (tests/conftest.py).

The serial group is the suite's wall time: one xdist worker runs it while the other worker's
tests end long before. Every CPU second a test beside the group takes from it is a second of
``make test``, so the tests beside it run at a low CPU weight and fill the CPU the group leaves
idle (its waits, its one-CPU windows, a VM's boot) instead of slowing it.

How: the xdist worker moves itself, per test, into a CPU cgroup of low weight (cgroup v1
``cpu.shares`` 512, half a default group's 1024; v2 ``cpu.weight`` 50 of 100) for a test
beside the group and back to its own cgroup for a test of the group. A cgroup holds every
child the test starts, whatever session it makes: local workers start in sessions of their
own, which the kernel's autogroups would otherwise schedule as peers of the group's workers.
Where no CPU cgroup can be made (not root, no writable cpu controller) the test's thread gets
nice 3 instead, which reaches only the children in its own session. Half, not less: at a tenth
(shares 102) a refusal test beside the group, a CLI child with a 60 s timeout, starved past it
while the group kept both CPUs busy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

BESIDE_NICE = 3
V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
PREFIX = "scaler-tests-"


class Priority:
    """One xdist worker's switch between the group's priority and the low one."""

    def __init__(self) -> None:
        self.home: Path | None = None  # the cgroup this worker started in
        self.low: Path | None = None  # the low-weight cgroup, made on first use
        self.tried = False
        self.where = "home"
        self.how = "as started"

    def beside_the_group(self) -> str:
        """Lower this worker (and what it starts) before a test beside the group; says how."""
        if self.where == "beside":
            return self.how
        self.where = "beside"
        if self._low() is not None and _move(self.low):
            self.how = f"cgroup {self.low}"
            return self.how
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, BESIDE_NICE)
        self.how = f"nice {BESIDE_NICE}"
        return self.how

    def in_the_group(self) -> None:
        """Back to the worker's own priority before a test of the group."""
        if self.where == "home":
            return
        self.where = "home"
        if self.low is not None and self.home is not None:
            _move(self.home)
        with contextlib.suppress(OSError):  # an unprivileged user cannot lower it again
            os.setpriority(os.PRIO_PROCESS, 0, 0)

    def close(self) -> None:
        self.in_the_group()
        if self.low is not None:
            with contextlib.suppress(OSError):
                self.low.rmdir()  # fails while a stray child still sits in it: left

    def _low(self) -> Path | None:
        if self.tried:
            return self.low
        self.tried = True
        for root, weight_file, weight in ((V1_ROOT, "cpu.shares", "512"),
                                          (V2_ROOT, "cpu.weight", "50")):
            home = _own_cgroup(root)
            if home is None:
                continue
            _sweep(root)
            low = root / f"{PREFIX}{os.getpid()}"
            try:
                low.mkdir(exist_ok=True)
                (low / weight_file).write_text(weight)
            except OSError:
                with contextlib.suppress(OSError):
                    low.rmdir()
                continue
            self.home, self.low = home, low
            return low
        return None


@contextlib.contextmanager
def paused_beside():
    """For a test of the group that needs the machine quiet (a window the noise meter must
    find clean): the low-weight cgroups of this session's workers get a CPU quota of 1% while
    it runs (cgroup v1 ``cpu.cfs_quota_us``, v2 ``cpu.max``), put back after. Their tests keep
    running, a hundred times slower; with nice instead of cgroups nothing is paused."""
    held = []
    for root, name, pause, back in ((V1_ROOT, "cpu.cfs_quota_us", "1000", "-1"),
                                    (V2_ROOT, "cpu.max", "1000 100000", "max 100000")):
        for group in root.glob(f"{PREFIX}*"):
            try:
                (group / name).write_text(pause)
                held.append((group / name, back))
            except OSError:
                continue
    try:
        yield len(held)
    finally:
        for path, back in held:
            with contextlib.suppress(OSError):
                path.write_text(back)


def _own_cgroup(root: Path) -> Path | None:
    """This process's cgroup under ``root`` (v1: its line for the cpu controller; v2: the
    unified line), or None when that hierarchy is not mounted there."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        v1 = root == V1_ROOT and "cpu" in controllers.split(",")
        v2 = root == V2_ROOT and controllers == "" and (root / "cgroup.controllers").exists()
        if v1 or v2:
            folder = root / path.lstrip("/")
            return folder if (folder / "cgroup.procs").exists() else None
    return None


def _move(group: Path) -> bool:
    try:
        (group / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def _sweep(root: Path) -> None:
    """Low-weight cgroups of earlier sessions whose worker is gone (empty ones only)."""
    for folder in root.glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                folder.rmdir()
