"""The VMs ``scaler plan --placement vm`` shows: the same ``vm_plan`` and QEMU command line
``VmTarget.start`` uses, with placeholders for what only exists once a VM starts (the
initramfs file, the QMP descriptor).

On this machine's own ``/sys`` the accelerator, KVM's capabilities and the kernel are the
ones a run would use. For another machine's sysfs tree the VM is shown as that machine
would boot it with KVM (``--accel tcg`` shows the emulated one); this machine's QEMU and
kernel stand in for that machine's, and the notes say so.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from affinity.cpulist import format_cpulist
from scaler.errors import UsageError
from scaler.targets import guestkernel, guestroot
from scaler.targets.accel import ACCELS, Q35_MAX_CPUS, Accel, probe_qemu, resolve_accel
from scaler.targets.pvh import boot_image
from scaler.targets.vmchecks import default_memory_mb
from scaler.targets.vmplan import Boot, VmOptions, VmPlan, vm_plan

if TYPE_CHECKING:
    from affinity import Plan, Topology

QEMU = "qemu-system-x86_64"
INITRD_PLACEHOLDER = "<initramfs written at start>"
QMP_FD_PLACEHOLDER = "<qmp socket fd>"
DEFAULT_WORKER_GB = 0.75  # a tf fp32 worker at batch 1 (the default run)


@dataclass(frozen=True)
class DryRun:
    plans: tuple[VmPlan, ...]
    boot: Boot
    accel: Accel
    notes: tuple[str, ...]


def dry_run(topology: Topology, plan: Plan, accel: str = "auto", memory_mb: int | None = None,
            kernel: str | None = None, hugepages: bool = False) -> DryRun:
    """The VM of each partition of ``plan`` (see the module doc); UsageError as a run would
    give for a VM QEMU could not boot or ``--accel kvm`` where KVM cannot run."""
    notes: list[str] = []
    own = os.path.realpath(topology.sysfs_root) == os.path.realpath("/sys")
    qemu = shutil.which(QEMU)
    if own:
        found = resolve_accel(accel, qemu=qemu) if qemu else resolve_accel(accel)
    elif accel == "tcg":
        found = resolve_accel("tcg")
    else:
        if accel not in ACCELS:
            raise UsageError(f"unknown --accel {accel!r}: choose from {', '.join(ACCELS)}")
        found = Accel("kvm", f"assumed for the machine of {topology.sysfs_root}")
        notes.append(f"{topology.sysfs_root} is not this machine: its VMs are shown with KVM "
                     "and KVM's cpu-pm support assumed (--accel tcg shows emulated ones)")
    max_vcpus = Q35_MAX_CPUS
    if qemu is None:
        notes.append(f"{QEMU} not found here: the q35 limit of {Q35_MAX_CPUS} vCPUs is assumed")
    else:
        try:
            max_vcpus = probe_qemu(qemu, "tcg" if not own else found.name).q35_max_cpus
        except UsageError as exc:
            notes.append(f"QEMU could not be asked for its limits ({exc}): "
                         f"{Q35_MAX_CPUS} vCPUs assumed")
    if own and not found.emulated and found.caps.get("max_vcpus"):
        max_vcpus = min(max_vcpus, found.caps["max_vcpus"])
    try:
        image = boot_image(guestkernel.find_kernel(kernel).path)
        kernel_path = image.path
        notes.append(f"boots {image.path} through its PVH entry" if image.method == "pvh"
                     else f"boots the bzImage {image.path}: {image.reason}")
    except UsageError:
        if kernel is not None:
            raise
        kernel_path = "<kernel: none found in /boot, give --vm-kernel>"
    if memory_mb is None:
        memory_mb = default_memory_mb(DEFAULT_WORKER_GB)
        notes.append(f"{memory_mb} MiB per VM, enough for a tf fp32 worker at batch 1 "
                     "(--vm-memory to change)")
    options = VmOptions(accel=found.name, memory_mb=memory_mb,
                        dedicated=not plan.oversubscribed,
                        cpu_pm=found.cpu_pm if own else found.name == "kvm",
                        hugepages=hugepages, max_vcpus=max_vcpus)
    plans = tuple(vm_plan(topology, p.cpus, p.nodes, p.index, options)
                  for p in plan.partitions)
    boot = Boot(qemu or QEMU, kernel_path, INITRD_PLACEHOLDER, QMP_FD_PLACEHOLDER,
                _shares())
    return DryRun(plans, boot, found, tuple(notes))


def _shares() -> tuple[str, ...]:
    """The host folders a run's guest would see for the default model and cache."""
    import sys

    from scaler.engines.cache import cache_root

    try:
        return guestroot.guest_root(sys.executable, [str(cache_root(None))]).shares
    except UsageError:
        return ()


def format_vms(vms: DryRun) -> list[str]:
    """Per partition: its VM's shape, vCPU pinning, guest NUMA nodes, tuning, command line."""
    lines = ["", f"VMs ({vms.accel.name}: {vms.accel.reason}); nothing was booted:"]
    for vm in vms.plans:
        tuning = vm.tuning()
        chosen = [name for name in ("host_cache_info", "kvm_hint_dedicated", "cpu_pm",
                                    "prealloc", "hugepages", "x2apic_intremap") if tuning[name]]
        lines += [
            "",
            f"vm {vm.index}: {vm.vcpus} vCPUs as sockets={vm.sockets} cores={vm.cores} "
            f"threads={vm.threads}, {vm.memory_mb} MiB, max APIC id {vm.max_apic_id}",
            "  vCPU->CPU  " + " ".join(f"{k}:{cpu}" for k, cpu in enumerate(vm.cpus)),
        ]
        for node in vm.nodes:
            lines.append(f"  guest node {node.id} = host node {node.host_node}: vCPUs "
                         f"{format_cpulist(node.vcpus)}, {node.memory_mb} MiB")
        lines.append(f"  tuning     {', '.join(chosen) or 'none'}; mem-merge off")
        lines += [f"  note: {note}" for note in vm.notes]
        lines.append("  " + shlex.join(vm.argv(vms.boot)))
    lines += [f"note: {note}" for note in vms.notes]
    return lines
