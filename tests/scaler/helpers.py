"""Helpers for tests that run real worker processes and the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_async(factory, coro, timeout_s: float = 120.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout_s)

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


def scaler_cmd(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user does, in a child process with a timeout (``env``: variables to
    add to this process's environment)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "scaler", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=kwargs.pop("cwd", ROOT),
                          **kwargs)


def alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (ppid, cmdline) of every live (not zombie) process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            out[int(entry)] = (int(fields[1]), cmd)
    return out


def worker_pids_of(parent: int) -> list[int]:
    """Live ``scaler.worker`` processes whose parent is ``parent``."""
    return [pid for pid, (ppid, cmd) in processes().items()
            if ppid == parent and b"scaler.worker" in cmd]
