"""Workers that hang or die: a SIGSTOPped worker (a stall), a QEMU killed while its VM boots
and while it measures, an SSH host's worker killed. Each ends with the group ``partial``, the
reason in run.json, the other instances' samples (and the dead one's earlier chunks) kept,
one error line, and no process left."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from tests.faults.conftest import NULL, PLUGIN, READY_S, SLEEPY, needs_qemu, run_folder
from tests.scaler.helpers import alive, processes
from tests.scaler.targets.conftest import descendants, our_vms, wait_gone

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

STALL_S = 3.0


def saved_group(out) -> tuple[dict, dict]:
    """The run saved under ``out`` as a reader loads it: its document and raw samples."""
    from scaler.results import load_run

    folder = run_folder(out)
    doc = json.loads((folder / "run.json").read_text())
    return doc, load_run(folder).samples()


def queries_of(arrays: dict, group: int, instance: int) -> int:
    return len(arrays.get(f"g{group}_i{instance}_end_ns", []))


def test_a_stopped_worker_is_a_stall_within_the_recorded_bound(tmp_path, start):
    out = tmp_path / "out"
    run = start("scaling", "--instances", "2", "--placement", "pinned", *SLEEPY,
                "--min-duration", "60", "--stall-timeout", str(STALL_S), "--out", str(out),
                env=PLUGIN)
    run.wait_line("measuring", timeout_s=120)
    time.sleep(1.5)  # both have sent a chunk or two
    victim, other = run.workers()
    os.kill(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    code, _, err = run.finish(timeout_s=60)
    ended = time.monotonic() - stopped
    assert code == 1, err
    assert not alive(victim), "the stopped worker was left behind"
    # noticed within the bound the group recorded (STALL_S, or ten of its slowest warm-up
    # queries where a loaded machine made those longer: never a speed this test assumes)
    errors = [line for line in err.splitlines() if line.startswith("scaler: error:")]
    assert len(errors) == 1 and "stalled" in errors[0], err
    doc, arrays = saved_group(out)
    (group,) = doc["groups"]
    assert doc["status"] == "partial" and any("stalled" in r for r in doc["partial_reasons"])
    bound = group["stall_timeout_s"]
    assert bound >= STALL_S
    assert ended < bound + 15, f"took {ended:.1f} s to notice a {bound:g} s stall"
    failed = [i for i in group["per_instance"] if "stalled" in (i.get("error") or "")]
    assert len(failed) == 1
    k = failed[0]["index"] if "index" in failed[0] else group["per_instance"].index(failed[0])
    assert queries_of(arrays, 0, 1 - k) > 0  # the other instance's samples are kept
    assert queries_of(arrays, 0, k) > 0  # and the stalled one's chunks sent before it stopped
    assert not {victim, other} & {p for p in processes() if alive(p)}


@needs_qemu
def test_a_qemu_killed_while_its_vm_boots(tmp_path, start):
    out = tmp_path / "out"
    run = start("latency", "--placement", "vm", *NULL, "--min-duration", "1",
                "--ready-timeout", READY_S, "--out", str(out))
    deadline = time.monotonic() + 60
    while not (vms := our_vms() & run.tree()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vms, "no QEMU started"
    tree = run.tree()
    for pid in vms:
        os.kill(pid, signal.SIGKILL)
    code, _, err = run.finish(timeout_s=120)
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("scaler: error:")]
    assert len(errors) == 1 and "instance 0" in errors[0], err
    assert not wait_gone(tree, 5)
    doc, _ = saved_group(out)
    assert doc["status"] == "partial"


@needs_qemu
def test_a_qemu_killed_while_it_measures(tmp_path, start):
    out = tmp_path / "out"
    run = start("latency", "--placement", "vm", *SLEEPY, "--min-duration", "60",
                "--ready-timeout", READY_S, "--out", str(out), env=PLUGIN)
    run.wait_line("measuring", timeout_s=float(READY_S) + 60)
    time.sleep(3)  # a few chunks of samples have crossed the serial port
    (qemu,) = our_vms() & run.tree()
    tree = run.tree()
    os.kill(qemu, signal.SIGKILL)
    code, _, err = run.finish(timeout_s=60)
    assert code == 1, err
    assert not wait_gone(tree, 5)
    doc, arrays = saved_group(out)
    (group,) = doc["groups"]
    assert doc["status"] == "partial"
    assert group["per_instance"][0].get("error")
    assert queries_of(arrays, 0, 0) > 0  # the chunks it sent before QEMU died


def test_an_ssh_hosts_worker_killed_mid_run(tmp_path, start, sshd):
    # the host's python loads the sleepy test engine too (ssh passes no environment)
    python = tmp_path / "python-with-plugin"
    python.write_text("#!/bin/sh\n" + " ".join(f"{k}={v}" for k, v in PLUGIN.items())
                      + f" exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(sshd.hosts_toml("box", python=str(python)))
    out = tmp_path / "out"
    run = start("scaling", "--instances", "2", "--placement", "pinned", *SLEEPY,
                "--min-duration", "60", "--hosts", str(hosts), "--out", str(out), env=PLUGIN)
    run.wait_line("measuring", timeout_s=120)
    time.sleep(1.5)
    remote = sorted(p for p in descendants(sshd.proc.pid)
                    if b"scaler.worker" in processes().get(p, (0, b""))[1])
    assert len(remote) == 2
    os.kill(remote[0], signal.SIGKILL)  # on the host, as a crash or the OOM killer would
    code, _, err = run.finish(timeout_s=60)
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("scaler: error:")]
    assert len(errors) == 1, err
    doc, arrays = saved_group(out)
    (group,) = doc["groups"]
    assert doc["status"] == "partial"
    assert sum(1 for i in group["per_instance"] if i.get("error")) == 1
    assert queries_of(arrays, 0, 0) > 0 and queries_of(arrays, 0, 1) > 0
    assert not wait_gone(descendants(sshd.proc.pid), 10)
