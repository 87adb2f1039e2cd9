"""Fleets of real size: at most --ssh-parallel ssh processes at once, a dead fleet refused host
by host in bounded time, and error lines of bounded length however long a hosts file's
values are. Every address is on the loopback (nothing leaves the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaler.errors import UsageError
from scaler.hosts import load_hosts
from tests.scaler.helpers import ROOT, processes

NULL = ["--engine", "null", "--model", "tiny", "--min-queries", "10", "--warmup", "0.1",
        "--min-duration", "0.2"]
needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")


def _closed_port() -> int:
    """A loopback port nothing listens on (freed at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hosts(path: Path, addresses: list[str], port: int, *options: str) -> Path:
    opts = ", ".join(f'"{o}"' for o in ("GlobalKnownHostsFile=/dev/null", *options))
    path.write_text("".join(
        f'[[host]]\nname = "h{k}"\ndestination = "{a}"\nport = {port}\n'
        f"ssh_options = [{opts}]\n" for k, a in enumerate(addresses)))
    return path


def _run_counting_ssh(args: list[str], timeout_s: float) -> tuple[int, str, int, float]:
    """Run scaler; (exit code, stderr, most ssh children seen at once, seconds taken)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            start_new_session=True)
    most = 0
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout_s:
            seen = sum(1 for ppid, cmd in processes().values()
                       if ppid == proc.pid and cmd.startswith(b"ssh\0"))
            most = max(most, seen)
            time.sleep(0.01)
        code = proc.wait(timeout=max(1.0, timeout_s - (time.monotonic() - t0)))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return code, proc.stderr.read(), most, time.monotonic() - t0


@needs_ssh
def test_2000_hosts_nothing_listens_on_are_refused_in_bounded_time(tmp_path):
    addresses = [f"127.0.{k // 250}.{k % 250 + 1}" for k in range(2000)]
    hosts = _hosts(tmp_path / "hosts.toml", addresses, _closed_port())
    out = tmp_path / "out"
    code, err, most, took = _run_counting_ssh(
        ["latency", *NULL, "--placement", "pinned", "--hosts", str(hosts), "--out", str(out)],
        timeout_s=60)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err  # a host failure (HostError), as before
    assert lines[0].startswith("scaler: error: host h0 (127.0.0.1): ssh failed:"), lines[0]
    assert "Connection refused" in lines[0] and "not probed" in lines[0]
    assert 1 <= most <= 32  # the default --ssh-parallel
    assert took < 60
    assert not out.exists() or list(out.iterdir()) == []


@needs_ssh
def test_no_more_than_ssh_parallel_connect_at_once(tmp_path):
    # a loopback listener of ours that never answers: each ssh waits out its ConnectTimeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        hosts = _hosts(tmp_path / "hosts.toml", ["127.0.0.1"] * 20,
                       silent.getsockname()[1], "ConnectTimeout=3")
        code, err, most, _ = _run_counting_ssh(
            ["latency", *NULL, "--placement", "pinned", "--hosts", str(hosts),
             "--ssh-parallel", "4", "--out", str(tmp_path / "out")], timeout_s=60)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err  # a host failure (HostError), as before
    assert most == 4  # all four wait 3 s: seen together, never a fifth
    assert "not probed" in lines[0]


def test_a_huge_value_gives_a_short_error_line(tmp_path):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(f'[[host]]\nname = "{"n" * 10_000_000}"\ndestination = "a"\n')
    with pytest.raises(UsageError) as info:
        load_hosts(hosts)
    text = str(info.value)
    assert len(text) < 400 and "more characters cut" in text and "\n" not in text
    assert "may hold letters, digits" in text  # the reason survives the cut


def test_ssh_parallel_is_checked():
    from tests.scaler.helpers import scaler_cmd

    done = scaler_cmd("latency", *NULL, "--ssh-parallel", "0", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "scaler: error: --ssh-parallel must be positive, not 0"
