"""Fixtures for target tests: a real OpenSSH server on 127.0.0.1, and process accounting.

Every fixture kills what it started; ``no_leftovers`` fails a test that leaves a QEMU of ours
(named ``scaler-vm*``) or a worker under the test's sshd behind.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scaler.helpers import ROOT, alive, processes

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSHD_START_TIMEOUT_S = 20.0


def our_vms() -> set[int]:
    """QEMU processes started by this checkout's vm target (named ``scaler-vm<k>``, sharing
    this checkout's folder with the guest): another checkout's VMs on a shared machine are
    none of these tests' business."""
    here = str(ROOT).encode()
    return {pid for pid, (_, cmd) in processes().items()
            if cmd.startswith(b"qemu-system") or b"/qemu-system" in cmd.split(b"\0")[0]
            if b"scaler-vm" in cmd and here in cmd}


def descendants(root: int) -> set[int]:
    procs = processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], timeout_s: float = 10.0) -> set[int]:
    """The pids still alive after up to ``timeout_s`` (processes being reaped take a moment)."""
    deadline = time.monotonic() + timeout_s
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def no_leftover_vms():
    before = our_vms()
    yield
    left = wait_gone(our_vms() - before)
    for pid in left:
        os.kill(pid, 9)
    assert not left, f"QEMU processes left behind: {sorted(left)}"


@dataclass
class Sshd:
    proc: subprocess.Popen
    port: int
    user: str
    key: Path
    known_hosts: Path
    folder: Path
    log: list[str]

    def hosts_toml(self, name: str = "local", **overrides: object) -> str:
        """One [[host]] table for this server, with values overridden as given."""
        from tests.scaler.helpers import ROOT

        values: dict[str, object] = {
            "name": name, "destination": f"{self.user}@127.0.0.1",
            "python": sys.executable,
            "workdir": str(ROOT), "port": self.port, "identity_file": str(self.key),
            "ssh_options": [f"UserKnownHostsFile={self.known_hosts}",
                            "GlobalKnownHostsFile=/dev/null"],
        }
        values.update(overrides)
        lines = ["[[host]]"]
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, list):
                lines.append(f"{key} = [{', '.join(repr(str(v)) for v in value)}]")
            elif isinstance(value, int):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
        return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "scaler-test", "-f",
                    str(path)], check=True, timeout=30)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A throwaway OpenSSH server on 127.0.0.1 that accepts one throwaway key."""
    if not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")):
        pytest.skip("OpenSSH server or client not installed (apt-get install openssh-server)")
    folder = tmp_path_factory.mktemp("sshd")
    keygen(folder / "host_key")
    keygen(folder / "user_key")
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
        "PidFile none", f"AuthorizedKeysFile {folder / 'authorized_keys'}", "StrictModes no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "UsePAM no",
        "PrintMotd no", "LogLevel INFO", ""]))
    host_type, host_key = (folder / "host_key.pub").read_text().split()[:2]
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_type} {host_key}\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation folder
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    listening = threading.Event()

    def drain() -> None:  # also keeps sshd from blocking on a full stderr pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line.rstrip())
            if "Server listening on" in line:
                listening.set()
        listening.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not listening.wait(SSHD_START_TIMEOUT_S) or proc.poll() is not None:
            pytest.fail(f"sshd did not start: {log[-5:]}")
        yield Sshd(proc, port, getpass.getuser(), folder / "user_key", known_hosts, folder, log)
    finally:
        sessions = descendants(proc.pid)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for pid in wait_gone(sessions, 5.0):
            os.kill(pid, 9)
