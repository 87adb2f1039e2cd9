"""The coordinator SIGKILLed mid-run: nothing it started outlives it by more than 2 s, the
groups it saved stay readable, and the next run sweeps what it left (temporary saves, VM
folders)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

from tests.faults.conftest import NULL, READY_S, kill_and_account, needs_qemu, run_folder
from tests.faults.conftest import wait_saved as wait_saved
from tests.scaler.helpers import ROOT, processes, scaler_cmd
from tests.scaler.targets.conftest import our_vms

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def test_local_workers_die_with_the_coordinator_and_saved_groups_stay(tmp_path, start):
    out = tmp_path / "out"
    run = start("scaling", "--instances", "1-2", "--placement", "pinned", *NULL,
                "--min-duration", "30", "--out", str(out))
    run.wait_line("measuring", timeout_s=120)  # group 1 (x1) is measuring: kill after its save?
    # let group 1 end and be saved, then kill while group 2 (x2) measures
    run.wait_line("measuring", timeout_s=120, count=2)
    doc = wait_saved(out, 1, 30)
    tree = run.tree()
    assert len(run.workers()) == 2
    left = kill_and_account(run.proc.pid, tree, within_s=2.0)
    assert not left, f"alive 2 s after the coordinator died: {left}"
    assert doc["groups"][0]["instances"] == 1
    # what was saved before is a run `show` reads (exit 0), holding group 1
    folder = run_folder(out)
    shown = scaler_cmd("show", "--json", str(folder), timeout=60)
    assert shown.returncode == 0, shown.stderr
    saved = json.loads((folder / "run.json").read_text())
    assert [g["instances"] for g in saved["groups"]] == [1]
    assert saved["status"] != "complete"
    # and show says the run is partial because its process is gone, not "running"
    summary = json.loads(shown.stdout)
    assert summary["status"] == "partial"
    assert any("coordinator gone (pid" in r for r in summary["partial_reasons"])


@needs_qemu
def test_qemu_dies_with_the_coordinator_and_the_next_run_sweeps_its_folder(tmp_path, start):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    run = start("latency", "--placement", "vm", *NULL, "--min-duration", "60",
                "--ready-timeout", READY_S, "--out", str(out), env={"TMPDIR": str(tmp)})
    run.wait_line("measuring", timeout_s=float(READY_S) + 60)
    vms = our_vms() & run.tree()
    assert len(vms) == 1
    (vm_dir,) = tmp.glob("scaler-vm-*")
    assert vm_dir.name.startswith(f"scaler-vm-{run.proc.pid}-")
    left = kill_and_account(run.proc.pid, run.tree(), within_s=2.0)
    assert not left, f"alive 2 s after the coordinator died: {left}"
    assert vm_dir.exists()  # nobody removed it: the coordinator died at once
    r = scaler_cmd("latency", "--placement", "pinned", *NULL, "--min-duration", "0.5",
                   "--out", str(out), timeout=120, env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    assert not vm_dir.exists()


def test_the_next_run_sweeps_what_dead_runs_left_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    tmp = tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    stale = [out / f".scaling-20260101-000000.tmp-{dead.pid}",
             tmp / f"scaler-vm-{dead.pid}-abc"]
    for folder in stale:
        folder.mkdir()
        (folder / "run.json").write_text("{}")
    (stale[1] / ".owner").write_text("")
    live = tmp / f"scaler-vm-{os.getpid()}-live"
    live.mkdir()
    with open(live / ".owner", "w") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # a live coordinator's VM folder
        r = scaler_cmd("latency", "--placement", "pinned", *NULL, "--min-duration", "0.5",
                       "--out", str(out), timeout=120, env={"TMPDIR": str(tmp)})
        assert r.returncode == 0, r.stderr
        assert not any(f.exists() for f in stale)
        assert live.exists()


def test_ssh_clients_and_remote_workers_die_with_the_coordinator(tmp_path, start, sshd):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(sshd.hosts_toml("box"))
    out = tmp_path / "out"
    run = start("scaling", "--instances", "2", "--placement", "pinned", *NULL,
                "--min-duration", "60", "--hosts", str(hosts), "--out", str(out))
    run.wait_line("measuring", timeout_s=120)
    tree = run.tree()
    procs = processes()
    clients = [p for p in tree if procs.get(p, (0, b""))[1].startswith(b"ssh\0")]
    from tests.scaler.targets.conftest import descendants

    remote = {p for p in descendants(sshd.proc.pid)
              if b"scaler.worker" in processes().get(p, (0, b""))[1]}
    assert len(clients) == 2 and len(remote) == 2
    left = kill_and_account(run.proc.pid, tree | remote, within_s=2.0)
    assert not left, f"alive 2 s after the coordinator died: {left}"


del ROOT
