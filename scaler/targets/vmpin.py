"""Confining a VM to its partition and reading it back: QEMU started on the partition's CPUs
(and killed with the coordinator), vCPU k's thread pinned to the plan's k-th CPU through QMP,
every other QEMU thread kept on the partition, and each guest node's memory policy read from
``/proc/PID/numa_maps``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable, Iterable

from affinity.cpulist import format_cpulist
from scaler.targets.qmp import Qmp
from scaler.targets.vminstance import VmError, VmInstance

PR_SET_PDEATHSIG = 1


def confine(cpus: Iterable[int]) -> Callable[[], None]:
    """Run in the forked child before exec: CPU affinity and death with the coordinator."""
    allowed = set(cpus)
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        os.sched_setaffinity(0, allowed)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


async def pin_vcpus(inst: VmInstance, qmp: Qmp, pid: int) -> None:
    """vCPU k on the plan's k-th CPU; every other QEMU thread on the partition."""
    cpus = list(inst.plan.cpus)
    vcpus = sorted(await qmp.execute("query-cpus-fast"), key=lambda c: c["cpu-index"])
    if len(vcpus) != len(cpus):
        raise VmError(f"QEMU reports {len(vcpus)} vCPUs, expected {len(cpus)}")
    if len({c["thread-id"] for c in vcpus}) != len(vcpus):
        raise VmError("vCPUs share a host thread (single-threaded TCG?): cannot pin 1:1")
    inst.vcpus = []
    vcpu_threads = set()
    for vcpu, cpu in zip(vcpus, cpus):
        tid = int(vcpu["thread-id"])
        try:
            os.sched_setaffinity(tid, {cpu})
            got = sorted(os.sched_getaffinity(tid))
        except OSError as exc:
            raise VmError(f"cannot pin vCPU {vcpu['cpu-index']} (thread {tid}) to CPU "
                          f"{cpu}: {exc.strerror}") from None
        if got != [cpu]:
            raise VmError(f"vCPU {vcpu['cpu-index']} thread {tid} is allowed on "
                          f"{format_cpulist(got)} after pinning to {cpu}")
        vcpu_threads.add(tid)
        props = vcpu.get("props") or {}
        inst.vcpus.append({"vcpu": vcpu["cpu-index"], "thread_id": tid, "cpu": cpu,
                           **{k: props[k] for k in ("socket-id", "core-id", "thread-id",
                                                    "node-id") if k in props}})
    allowed = set(cpus)
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    on_partition = True
    for tid in tids:
        if tid in vcpu_threads:
            continue
        with contextlib.suppress(OSError):  # a thread may end meanwhile
            if not os.sched_getaffinity(tid) <= allowed:
                os.sched_setaffinity(tid, allowed)
            on_partition &= os.sched_getaffinity(tid) <= allowed
    inst.qemu_threads, inst.threads_on_partition = len(tids), on_partition


def read_memory_policy(inst: VmInstance, pid: int, bind_memory: bool,
                       bind_refusal: str = "") -> None:
    """Each guest node's backend must show ``bind:<its host node>`` in numa_maps
    (``bind_memory`` False: the kernel refused mbind, ``bind_refusal`` says how)."""
    nodes = [node.host_node for node in inst.plan.nodes]
    if not bind_memory:
        inst.memory_reason = f"mbind refused, VM memory not bound: {bind_refusal}"
    elif not inst.partition.get("nodes"):
        inst.memory_reason = "no nodes in the partition"
    policies = set()
    with contextlib.suppress(OSError), open(f"/proc/{pid}/numa_maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[1].startswith("bind:"):
                policies.add(parts[1])
    inst.memory_policy = ",".join(sorted(policies)) or "default"
    wanted = {f"bind:{node}" for node in nodes}
    bound = bind_memory and bool(inst.partition.get("nodes"))
    inst.memory_bound = bound and policies == wanted
    if bound:
        inst.memory_reason = "bound" if inst.memory_bound else (
            f"asked for {','.join(sorted(wanted))}, QEMU's numa_maps show "
            f"{inst.memory_policy}")
