"""The fault suite's tools: a ``scaler`` command started as a user starts it, its progress
read as it comes, its process tree taken before it is hurt, and a small file system of our
own to fill up or turn read-only.

Every wait has a deadline; every process a test starts is killed when the test ends.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.scaler.helpers import ROOT, alive, processes
from tests.scaler.targets.conftest import descendants, our_vms, sshd, wait_gone  # noqa: F401

NULL = ["--engine", "null", "--min-queries", "10", "--warmup", "0.2"]
# a worker that keeps measuring (2 ms per query, tests.scaler.plugin_example) where the null
# engine would reach its query cap in a fraction of a second and sit idle
SLEEPY = ["--engine", "sleepy", "--model", "tiny", "--min-queries", "10", "--warmup", "0.2"]
PLUGIN = {"SCALER_PLUGINS": "tests.scaler.plugin_example",
          "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
READY_S = "150"  # a TCG boot on 2 busy cores


@dataclass
class Scaler:
    """A running ``scaler`` command: its stderr lines as they come, and its process tree."""

    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, text: str, timeout_s: float, count: int = 1) -> str:
        """The ``count``-th stderr line holding ``text``; fails the test after the deadline."""
        seen = sum(text in line for line in self.lines)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"scaler ended (code {self.proc.wait(10)}) before {text!r}:\n"
                            + "\n".join(self.lines[-20:]))
            self.lines.append(line)
            if text in line:
                seen += 1
                if seen >= count:
                    return line
        pytest.fail(f"no {text!r} within {timeout_s:g} s:\n" + "\n".join(self.lines[-20:]))

    def finish(self, timeout_s: float) -> tuple[int, str, str]:
        """Exit code, stdout and every stderr line, once it has ended."""
        code = self.proc.wait(timeout_s)
        out = self.proc.stdout.read() if self.proc.stdout else ""
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code, out, "\n".join(self.lines)

    def tree(self) -> set[int]:
        return descendants(self.proc.pid)

    def workers(self) -> list[int]:
        procs = processes()
        return sorted(p for p in self.tree() if b"scaler.worker" in procs.get(p, (0, b""))[1])


@pytest.fixture
def start(tmp_path):
    """Start ``scaler ARGS`` (its own session, so signals reach it alone); killed at the end
    with everything it started."""
    started: list[Scaler] = []

    def run(*args: str, env: dict[str, str] | None = None) -> Scaler:
        full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                **(env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT, env=full,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        started.append(Scaler(proc))
        return started[-1]

    yield run
    for s in started:
        tree = s.tree() | {s.proc.pid}
        for pid in tree:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        s.proc.wait(10)
        wait_gone(tree, 10)


def run_folder(out: Path) -> Path | None:
    found = sorted(p.parent for p in out.rglob("run.json"))
    return found[0] if found else None


def wait_saved(out: Path, groups: int, timeout_s: float) -> dict:
    """The run.json under ``out`` once it holds ``groups`` groups."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        folder = run_folder(out)
        if folder is not None:
            try:
                doc = json.loads((folder / "run.json").read_text())
            except (OSError, ValueError):
                doc = {}
            if len(doc.get("groups", [])) >= groups:
                return doc
        time.sleep(0.1)
    pytest.fail(f"no run.json with {groups} group(s) under {out} within {timeout_s:g} s")


def kill_and_account(pid: int, tree: set[int], within_s: float = 2.0) -> set[int]:
    """SIGKILL ``pid``; what of ``tree`` (taken before) is still alive ``within_s`` later."""
    os.kill(pid, signal.SIGKILL)
    return wait_gone(tree, within_s)


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MiB tmpfs of our own (root only): ``fill()`` uses up its space, ``read_only()``
    remounts it read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    class Fs:
        path = mount

        @staticmethod
        def fill() -> None:
            with open(mount / "filler", "wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\xff" * (1 << 20))
                    f.flush()

        @staticmethod
        def read_only() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, timeout=30)

    try:
        yield Fs
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30, check=False)


def have_qemu() -> bool:
    if shutil.which("qemu-system-x86_64") is None:
        return False
    from scaler.errors import UsageError
    from scaler.targets import guest
    from scaler.targets.guestkernel import find_kernel

    try:
        guest.check_kernel(find_kernel(None))
    except UsageError:
        return False
    return True


needs_qemu = pytest.mark.skipif(not have_qemu(), reason="no QEMU or no bootable host kernel")
