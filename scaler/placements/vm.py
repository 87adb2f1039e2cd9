"""``vm``: each instance in its own QEMU VM, its vCPUs pinned 1:1 to a pinned partition's CPUs
and its memory bound to the partition's nodes (see ``scaler.targets.vm``). The partitions are
the ``pinned`` ones, so VMs and pinned processes are compared on the same cores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from affinity import plan as plan_partitions
from scaler.placements.base import DryRunView, GroupPlan, InstancePlan, register
from scaler.placements.pinned import Pinned

if TYPE_CHECKING:
    from affinity import Partition, Plan, Topology
    from scaler.engines import EngineSpec
    from scaler.settings import Settings
    from scaler.targets import Target


class Vm(Pinned):
    name = "vm"
    summary = "N QEMU VMs, each with its vCPUs pinned 1:1 to its own cores"
    marker = "^"
    virtualized = True
    local_only = ("boots VMs on this machine: it cannot be combined with --hosts (list "
                  "existing VMs in the hosts file instead)")

    def instance(self, k: int, part: Partition, topology: Topology) -> InstancePlan:
        """In the guest the worker takes all of its vCPUs and guest NUMA nodes, numbered from
        0 (``scaler.targets.vmplan.guest_partition``)."""
        from scaler.targets.vmplan import guest_partition

        g = guest_partition(part.cpus, part.nodes, topology)
        return InstancePlan(k, g.threads, cpus=tuple(part.cpus), nodes=tuple(part.nodes),
                            worker_cpus=tuple(g.cpus), worker_nodes=tuple(g.nodes))

    def make_target(self, settings: Settings, topology: Topology) -> Target:
        """The VM target (checks the kernel and QEMU; boots nothing yet)."""
        from scaler.targets.vm import VmTarget

        return VmTarget(topology, kernel=settings.vm_kernel, memory_mb=settings.vm_memory_mb,
                        accel=settings.vm_accel, hugepages=settings.vm_hugepages)

    def preflight(self, settings: Settings, topology: Topology, spec: EngineSpec) -> None:
        """A missing kernel or QEMU, a guest CPU that cannot run the precision, and VMs that
        cannot fit their NUMA nodes or QEMU's limits, before any group: a usage error now
        rather than at the first VM start."""
        from scaler.footprint import estimate_gb

        super().preflight(settings, topology, spec)
        vm = self.make_target(settings, topology)
        vm.check_spec(spec.precision, spec.engine)
        for n in settings.instances:
            parts = plan_partitions(topology, n, settings.cores_per_instance, smt=settings.smt,
                                    oversubscribe=True).partitions
            vm.plan_memory([{"cpus": list(p.cpus), "nodes": list(p.nodes)} for p in parts],
                           settings.vm_memory_mb, estimate_gb(spec.engine, spec.model,
                                                              spec.precision, settings.batch,
                                                              spec.cache_dir))

    def dry_run(self, topology: Topology, plan: Plan, settings: Settings) -> DryRunView:
        """The VM each partition would boot: the same plan and QEMU command line as a run."""
        from scaler.targets.dryrun import dry_run, format_vms

        vms = dry_run(topology, plan, settings.vm_accel, settings.vm_memory_mb,
                      settings.vm_kernel, settings.vm_hugepages)
        return DryRunView(self.name, [vm.to_dict(vms.boot) for vm in vms.plans],
                          {"accel": vms.accel.name, "accel_reason": vms.accel.reason,
                           "notes": list(vms.notes)}, format_vms(vms))

    def notes(self, settings: Settings) -> list[str]:
        from scaler.targets.accel import resolve_accel

        accel = resolve_accel(settings.vm_accel)
        if not accel.emulated:
            return []
        return [f"VMs run under TCG emulation ({accel.reason}), about 100x slower; their "
                "results are marked emulated"]

    def check_memory(self, target: Target, plan: GroupPlan, settings: Settings,
                     worker_gb: float) -> None:
        """Guest memory for the group's VMs, refused when their nodes cannot hold them."""
        target.plan_memory(plan.partitions, settings.vm_memory_mb, worker_gb)  # type: ignore[attr-defined]


register(Vm())
