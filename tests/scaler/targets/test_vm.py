"""Real VMs under QEMU (TCG here: no hardware virtualization), with the null engine.

Checks what the ``vm`` placement promises: one VM per partition, each vCPU thread pinned to
its planned CPU (asked of QEMU itself through QMP, then of the kernel), guest memory bound
to the partition's node, results marked emulated without KVM, and no QEMU left behind after
success, a broken kernel, a worker that is never ready, or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affinity import plan, read_topology
from scaler.coordinator import RunRules, WorkerRequest, run_group
from scaler.errors import UsageError
from scaler.results import target_record
from scaler.targets.base import Target
from scaler.targets.qmp import Qmp
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import ROOT, alive, run_async, scaler_cmd
from tests.scaler.targets.conftest import our_vms

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

READY_S = "150"  # a TCG boot is ~8 s alone, far longer on 2 cores busy with other tests
NULL = ["--engine", "null", "--min-duration", "1", "--min-queries", "10", "--warmup", "0.2",
        "--ready-timeout", READY_S]


def pvh_kernel(path: str) -> bool:
    config = Path(path.replace("vmlinuz-", "config-"))
    return config.is_file() and "CONFIG_PVH=y" in config.read_text()


def vm_target_or_skip():
    from scaler.targets.vm import VmTarget

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU not installed (apt-get install qemu-system-x86)")
    try:
        return VmTarget(read_topology())
    except UsageError as exc:
        pytest.skip(f"no bootable host kernel: {exc}")


class Checked(Target):
    """The VM target, asking QEMU through QMP right after each start what it pinned where."""

    def __init__(self, vm) -> None:
        self.vm = vm
        self.name, self.emulated = vm.name, vm.emulated
        self.seen: dict[int, dict] = {}

    async def start(self, request):
        proc = await self.vm.start(request)
        inst = self.vm.instances[request.index]
        qmp = await Qmp.connect(inst.qmp_path, 30)
        try:
            vcpus = await qmp.execute("query-cpus-fast")
            status = await qmp.execute("query-status")
        finally:
            qmp.close()
        tasks = os.listdir(f"/proc/{proc.pid}/task")
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        with open(argv[argv.index(b"-kernel") + 1], "rb") as f:
            kernel_magic = f.read(4)
        self.seen[request.index] = {
            "kernel_magic": kernel_magic,
            "status": status["status"],
            "vcpus": {c["cpu-index"]: sorted(os.sched_getaffinity(c["thread-id"]))
                      for c in vcpus},
            "names": {c["cpu-index"]: Path(f"/proc/{proc.pid}/task/{c['thread-id']}/comm")
                      .read_text().strip() for c in vcpus},
            "all_threads": set().union(*(os.sched_getaffinity(int(t)) for t in tasks)),
        }
        return proc


def test_two_vms_pinned_one_per_partition(no_leftover_vms):
    vm = vm_target_or_skip()
    topo = read_topology()
    parts = plan(topo, 2, oversubscribe=True).partitions
    vm.plan_memory([{"nodes": list(p.nodes)} for p in parts], None, 0.05)
    reqs = [WorkerRequest(k, WorkerSpec(engine="null", model="tiny", instance=k, cpus=(0,),
                                        threads=1, warmup_s=0.2),
                          {"cpus": list(p.cpus), "nodes": list(p.nodes)})
            for k, p in enumerate(parts)]
    target = Checked(vm)
    rules = RunRules(min_duration_s=1, min_queries=10, warmup_s=0.2,
                     ready_timeout_s=float(READY_S), stall_timeout_s=60)
    try:
        outcome = run_async(asyncio.new_event_loop, run_group(reqs, rules, target), 240)
    finally:
        vm.close()
    assert outcome.complete, outcome.errors
    for k, part in enumerate(parts):
        seen = target.seen[k]
        assert seen["status"] == "running"
        # the image QEMU was given: the kernel's ELF (a PVH boot) when its config says it
        # has the entry, which Debian's and Ubuntu's amd64 kernels have (targets/pvh.py)
        if pvh_kernel(vm.kernel.path):
            assert seen["kernel_magic"] == b"\x7fELF"
            assert vm.describe()["boot"]["method"] == "pvh"
        # QEMU's vCPU k runs on a host thread allowed on exactly the k-th planned CPU
        assert seen["vcpus"] == {i: [cpu] for i, cpu in enumerate(part.cpus)}
        assert seen["names"][0].startswith("CPU 0/")  # debug-threads names: really a vCPU
        assert seen["all_threads"] <= set(part.cpus)  # no QEMU thread off the partition
        info = vm.instance_info(k)["vm"]
        # vCPU k on the plan's k-th CPU: the partition's CPUs in (node, core, sibling) order
        assert [v["cpu"] for v in info["vcpus"]] == info["plan"]["vcpus"]
        assert sorted(info["plan"]["vcpus"]) == list(part.cpus)
        assert info["plan"]["numa_nodes"] == list(part.nodes)
        assert info["guest_isa"] is not None and "guest_steal" in info
        assert info["qemu_threads_on_partition"] is True
        assert info["memory_policy"] == f"bind:{','.join(map(str, part.nodes))}"
        assert info["memory_bound"] is True
        assert info["boot_to_ready_s"] > 0
        assert not alive(info["qemu_pid"])
        ready = outcome.instances[k].ready
        assert ready["hostname"] == f"scaler-vm{k}"
        assert ready["binding"]["cpus"] == [0]  # the guest's own single vCPU
    boots = {i.ready["boot_id"] for i in outcome.instances}
    assert len(boots) == 2  # two kernels, two clocks


def test_latency_in_one_vm_is_marked_emulated(tmp_path, no_leftover_vms):
    vm_target_or_skip()
    r = scaler_cmd("latency", "--placement", "vm", *NULL, "--out", str(tmp_path), "--json",
                   timeout=240)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    doc = json.loads((Path(summary["run"]) / "run.json").read_text())
    (group,) = doc["groups"]
    assert group["target"] == "vm" and group["placement"] == "vm"
    emulated = target_record(doc, "vm")["accel"] == "tcg"
    assert doc["emulated"] is emulated and group["emulated"] is emulated
    assert summary["emulated"] is emulated
    if emulated:
        assert "TCG emulation" in r.stderr and "--allow-emulated" in r.stderr
    (inst,) = group["per_instance"]
    # one instance owns the whole machine: one vCPU per usable CPU, pinned in the plan's
    # (node, core, sibling) order; the worker binds to every vCPU and guest node
    vm = inst["vm"]
    assert [v["cpu"] for v in vm["vcpus"]] == vm["plan"]["vcpus"]
    assert sorted(vm["plan"]["vcpus"]) == inst["partition"]["cpus"]
    assert inst["binding"]["cpus"] == list(range(len(inst["partition"]["cpus"])))
    assert inst["binding"]["nodes"] == list(range(len(vm["plan"]["numa_nodes"])))
    assert vm["plan"]["tuning"]["prealloc"] and not vm["plan"]["tuning"]["mem_merge"]
    assert set(vm["isa_missing"]) == set(doc["host"]["topology"]["isa"]) - set(vm["guest_isa"])
    assert vm["guest_steal"]["share_since_boot"] is not None  # sampled on the console
    assert "host_facts" in vm and "qemu_facts" in vm
    assert not any("scaler-init: stat" in line for line in inst.get("stderr_tail", []))
    assert summary["samples"] >= 10
    # the guest saw the worker's environment read-only, not the host's root file system
    shares = vm["guest_root"]["shares"]
    assert shares and "/" not in shares and not {"/etc", "/root", "/home"} & set(shares)
    assert any(str(ROOT).startswith(s) for s in shares)


def test_wrong_kernel_paths_fail_before_any_vm(tmp_path, no_leftover_vms):
    vm_target_or_skip()
    junk = tmp_path / "vmlinuz-junk"
    junk.write_bytes(b"\0" * 4096)
    for kernel, fragment in ((tmp_path / "missing", "no such file"),
                             (junk, "not an x86 Linux kernel image")):
        r = scaler_cmd("latency", "--placement", "vm", *NULL, "--vm-kernel", str(kernel),
                       "--out", str(tmp_path / "out"), timeout=60)
        assert r.returncode == 2, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"scaler: error: --vm-kernel {kernel}: ") and fragment in line


def test_a_kernel_that_does_not_boot_is_an_error_and_leaves_no_qemu(tmp_path, no_leftover_vms):
    vm = vm_target_or_skip()
    broken = tmp_path / "vmlinuz-broken"  # a real header and version, then no kernel at all
    broken.write_bytes(Path(vm.kernel.path).read_bytes()[:0x10200] + b"\xf4" * 0x10000)
    r = scaler_cmd("latency", "--placement", "vm", *NULL, "--vm-kernel", str(broken),
                   "--out", str(tmp_path), timeout=120)
    assert r.returncode == 1, r.stderr
    assert "scaler: error: vm x1 batch 1: instance 0:" in r.stderr
    assert "vm 0:" in r.stderr  # the VM's own account: its console, why it ended
    run = next(tmp_path.glob("latency-*"))
    doc = json.loads((run / "run.json").read_text())
    assert doc["status"] == "partial"


def test_a_worker_never_ready_stops_its_vm(tmp_path, no_leftover_vms):
    vm_target_or_skip()
    r = scaler_cmd("latency", "--placement", "vm", *NULL[:-2], "--ready-timeout", "2",
                   "--out", str(tmp_path), timeout=120)
    assert r.returncode == 1, r.stderr
    assert "not ready within 2 s" in r.stderr
    doc = json.loads((next(tmp_path.glob("latency-*")) / "run.json").read_text())
    (inst,) = doc["groups"][0]["per_instance"]
    assert inst["status"] == "failed" and inst["vm"]["qemu_pid"]


def test_ctrl_c_while_vms_boot_stops_them(tmp_path, no_leftover_vms):
    vm_target_or_skip()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "scaler", "scaling", "--placement", "vm",
                             "--instances", "2", *NULL, "--out", str(tmp_path)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        seen = b""
        while b"starting workers" not in seen:  # a line on stderr, read with a deadline
            left = deadline - time.monotonic()
            assert left > 0, seen
            if select.select([proc.stderr], [], [], left)[0]:
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk, seen
                seen += chunk
        vms = set()
        while len(vms) < 2 and time.monotonic() < deadline:  # both QEMUs exist
            vms = {pid for pid in our_vms() if _parent_chain_has(pid, proc.pid)}
            time.sleep(0.1)
        assert len(vms) == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    assert not any(alive(pid) for pid in vms)


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return False
    return False


def test_a_guest_that_cannot_run_the_precision_turns_ready_into_an_error():
    from scaler.targets.vminstance import VmInstance
    from scaler.worker import protocol

    vm = vm_target_or_skip()
    part = {"cpus": [0], "nodes": [0]}
    inst = VmInstance(0, part, vm.vm_plan(part, 0), "/nonexistent.qmp")
    check = vm._ready_check(inst, WorkerSpec(engine="tf", precision="bf16"))
    reply = protocol.decode(check(protocol.encode({"type": "ready", "isa": ["avx2"]})))
    assert reply["type"] == "error" and reply["kind"] == "guest ISA"
    assert "neither avx512_bf16 nor amx_bf16" in reply["message"]
    assert inst.failure == reply["message"] and inst.guest_isa == ["avx2"]
    fine = vm._ready_check(inst, WorkerSpec(engine="tf", precision="fp32"))
    line = protocol.encode({"type": "ready", "isa": ["avx2"]})
    assert fine(line) == line  # passed on untouched, the difference recorded as a warning
    assert inst.isa_missing == [f for f in vm.topology.isa if f != "avx2"]
    if vm.emulated:  # QEMU's predicted guest CPU under TCG has no AVX-512
        with pytest.raises(UsageError, match="vm placement: the guest CPU has neither"):
            vm.check_spec("bf16", "tf")


def test_a_vm_qemu_could_not_boot_is_refused_while_preparing(tmp_path):
    """A whole-machine VM of a 384-CPU host (fixture tree): more vCPUs than q35 takes, or
    (QEMU > 8.0) APIC ids that need x2APIC, which TCG is not given. Refused by plan_memory,
    which the run's preparation calls for every group before any VM starts."""
    from scaler.targets.vm import VmTarget
    from tests.affinity.fixtures import make_sysfs

    vm_target_or_skip()
    machine = make_sysfs.build("big-2s-384", "2 x 96 cores x 2 threads",
                               [make_sysfs.Group(0, 0, 96), make_sysfs.Group(1, 1, 96)],
                               make_sysfs.ZEN4)
    topo = read_topology(make_sysfs.write(machine, str(tmp_path)))
    vm = VmTarget(topo, accel="tcg")
    whole = plan(topo, 1, smt=True).partitions[0]
    with pytest.raises(UsageError, match=r"partition 0 (has 384 CPUs but QEMU's q35 machine "
                                         r"takes at most \d+ vCPUs|needs APIC ids up to)"):
        vm.plan_memory([{"cpus": list(whole.cpus), "nodes": list(whole.nodes)}], 1024, 0.05)
    halves = plan(topo, 4, smt=True).partitions  # 96 vCPUs each: fine
    vm.plan_memory([{"cpus": list(p.cpus), "nodes": list(p.nodes)} for p in halves], 512, 0.05)
    assert vm.dedicated is True
    shared = plan(topo, 2, 120, oversubscribe=True).partitions  # 48 cores in both
    vm.plan_memory([{"cpus": list(p.cpus), "nodes": list(p.nodes)} for p in shared], 512, 0.05)
    assert vm.dedicated is False and not vm.options().dedicated


def test_serving_through_a_vm_times_completions_on_the_coordinators_clock(tmp_path,
                                                                          no_leftover_vms):
    """The server scenario's binary frames cross QEMU's virtio-serial port both ways; the
    guest's monotonic clock is its own (another boot), so completions are timed on receipt
    by the coordinator, and every request is served."""
    vm_target_or_skip()
    # 500 requests/s: the harness's own probe at the target rate takes 1,000 requests (20 s
    # of a VM at 50/s); the null engine under TCG serves far more
    r = scaler_cmd("server", "--placement", "vm", "--engine", "null", "--target-qps", "500",
                   "--latency-bound-ms", "5000", "--min-duration", "1", "--min-queries", "40",
                   "--warmup", "0.2", "--ready-timeout", READY_S,
                   "--out", str(tmp_path), "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    (group,) = doc["groups"]
    assert group["target"] == "vm" and group["status"] == "complete"
    assert group["requests"]["completed"] == group["requests"]["scheduled"] >= 50
    assert group["generator"]["completion_clock"] == ["coordinator"]
