"""``vm``: each instance in its own QEMU VM, its vCPUs pinned 1:1 to a pinned partition's CPUs
and its memory bound to the partition's nodes (see ``scaler.targets.vm``). The partitions are
the ``pinned`` ones, so VMs and pinned processes are compared on the same cores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from affinity import plan as plan_partitions
from scaler.placements.base import GroupPlan, InstancePlan, register
from scaler.placements.pinned import Pinned

if TYPE_CHECKING:
    from affinity import Partition, Topology
    from scaler.settings import Settings
    from scaler.targets import Target


class Vm(Pinned):
    name = "vm"
    summary = "N QEMU VMs, each with its vCPUs pinned 1:1 to its own cores"
    marker = "^"
    virtualized = True
    local_only = ("boots VMs on this machine: it cannot be combined with --hosts (list "
                  "existing VMs in the hosts file instead)")

    def instance(self, k: int, part: Partition) -> InstancePlan:
        """In the guest the worker takes all of its vCPUs, numbered from 0, in one node."""
        return InstancePlan(k, len(part.cpus), cpus=tuple(part.cpus), nodes=tuple(part.nodes),
                            worker_cpus=tuple(range(len(part.cpus))), worker_nodes=None)

    def make_target(self, settings: Settings, topology: Topology) -> Target:
        """The VM target (checks the kernel and QEMU; boots nothing yet)."""
        from scaler.targets.vm import VmTarget

        return VmTarget(topology, kernel=settings.vm_kernel, memory_mb=settings.vm_memory_mb)

    def preflight(self, settings: Settings, topology: Topology, worker_gb: float) -> None:
        """A missing kernel or QEMU, and VMs that cannot fit their NUMA nodes, before any
        group: a usage error now rather than at the first VM start."""
        super().preflight(settings, topology, worker_gb)
        vm = self.make_target(settings, topology)
        for n in settings.instances:
            parts = plan_partitions(topology, n, smt=settings.smt, oversubscribe=True).partitions
            vm.plan_memory([{"nodes": list(p.nodes)} for p in parts], settings.vm_memory_mb,
                           worker_gb)

    def notes(self, settings: Settings) -> list[str]:
        from scaler.targets.vm import detect_accel

        accel = detect_accel()
        if not accel.emulated:
            return []
        return [f"no hardware virtualization ({accel.reason}): VMs run under TCG emulation, "
                "about 100x slower; their results are marked emulated"]

    def check_memory(self, target: Target, plan: GroupPlan, settings: Settings,
                     worker_gb: float) -> None:
        """Guest memory for the group's VMs, refused when their nodes cannot hold them."""
        target.plan_memory(plan.partitions, settings.vm_memory_mb, worker_gb)  # type: ignore[attr-defined]


register(Vm())
