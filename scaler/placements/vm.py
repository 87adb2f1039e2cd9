"""``vm``: each instance in its own QEMU VM, its vCPUs pinned 1:1 to a pinned partition's CPUs
and its memory bound to the partition's nodes (see ``scaler.targets.vm``). The partitions are
the ``pinned`` ones, so VMs and pinned processes are compared on the same cores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from affinity import plan as plan_partitions
from scaler.errors import UsageError
from scaler.placements.base import DryRunView, GroupPlan, InstancePlan, register
from scaler.placements.options import option
from scaler.placements.pinned import Pinned
from scaler.settings import parse_memory_mb

if TYPE_CHECKING:
    from affinity import Partition, Plan, Topology
    from scaler.engines import EngineSpec
    from scaler.settings import Settings
    from scaler.targets import Target


ACCELS = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class VmOptions:
    """The ``vm`` placement's options (run.json: ``requested.vm_memory_mb`` etc.)."""

    memory_mb: int | None = option(
        None, flag="--vm-memory", cli_type=str | None, parse=parse_memory_mb,
        help="memory of each VM, e.g. 2G (default: enough for the model)")
    kernel: str | None = option(
        None, flag="--vm-kernel", help="kernel the VMs boot (default: the newest "
        "/boot/vmlinuz-*)")
    accel: str = option(
        "auto", flag="--accel", help="VM acceleration: auto (KVM where it works, else TCG "
        "emulation), kvm (refused, saying why, where KVM cannot run) or tcg")
    hugepages: bool = option(
        False, flag="--vm-hugepages", help="back VM memory with 2 MiB huge pages (reserve "
        "them first)")


class Vm(Pinned):
    name = "vm"
    summary = "N QEMU VMs, each with its vCPUs pinned 1:1 to its own cores"
    marker = "^"
    virtualized = True
    suite_only_when_real = True  # the suite sets VMs against bare metal only where they are
    local_only = ("boots VMs on this machine: it cannot be combined with --hosts (list "
                  "existing VMs in the hosts file instead)")
    options = VmOptions

    def check_options(self, options: Any) -> None:
        if options.accel not in ACCELS:
            raise UsageError(f"unknown --accel {options.accel!r}: choose from "
                             f"{', '.join(ACCELS)}")

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

        o = self.options_of(settings)
        return VmTarget(topology, kernel=o.kernel, memory_mb=o.memory_mb, accel=o.accel,
                        hugepages=o.hugepages)

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
                           self.options_of(settings).memory_mb, estimate_gb(spec.engine, spec.model,
                                                              spec.precision, settings.batch,
                                                              spec.cache_dir))

    def dry_run(self, topology: Topology, plan: Plan, settings: Settings) -> DryRunView:
        """The VM each partition would boot: the same plan and QEMU command line as a run."""
        from scaler.targets.dryrun import dry_run, format_vms

        o = self.options_of(settings)
        vms = dry_run(topology, plan, o.accel, o.memory_mb, o.kernel, o.hugepages)
        return DryRunView(self.name, [vm.to_dict(vms.boot) for vm in vms.plans],
                          {"accel": vms.accel.name, "accel_reason": vms.accel.reason,
                           "notes": list(vms.notes)}, format_vms(vms))

    def emulation(self, settings: Settings) -> str:
        from scaler.targets.accel import resolve_accel

        accel = resolve_accel(self.options_of(settings).accel)
        if not accel.emulated:
            return ""
        return (f"VMs run under TCG emulation ({accel.reason}), about 100x slower; their "
                "results are marked emulated")

    def notes(self, settings: Settings) -> list[str]:
        why = self.emulation(settings)
        return [why] if why else []

    def check_memory(self, target: Target, plan: GroupPlan, settings: Settings,
                     worker_gb: float) -> None:
        """Guest memory for the group's VMs, refused when their nodes cannot hold them."""
        target.plan_memory(plan.partitions, self.options_of(settings).memory_mb, worker_gb)


register(Vm())
