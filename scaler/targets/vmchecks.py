"""Checks made before a VM boots, and on what its guest reports: memory that fits its NUMA
nodes (or huge pages), and a guest CPU that can run the request as the host does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist
from scaler.errors import UsageError
from scaler.hostfacts import free_hugepages_2m

if TYPE_CHECKING:
    from scaler.targets.vmplan import VmPlan

GUEST_OVERHEAD_MB = 384  # guest kernel, page cache of the shared root, tmpfs
MIN_MEMORY_MB = 512

INT8_ISA = ("avx512_vnni", "avx_vnni", "amx_int8")  # what makes int8 fast on x86


def isa_verdict(host_isa: Iterable[str], guest_isa: Iterable[str], precision: str,
                infers: bool, kvm: bool) -> tuple[list[str], list[str], str | None]:
    """(host flags the guest lacks, warnings for results, a refusal or None).

    A guest without AVX-512, VNNI or AMX would have its slowness blamed on virtualization,
    so every missing flag is a warning. A request the guest cannot run as the host does is
    refused: bf16 without avx512_bf16/amx_bf16 in the guest (always: ``check_spec``'s rule),
    and under KVM int8 without any of the host's VNNI/AMX int8 flags (under TCG the guest
    CPU is QEMU's model and its timings are not compared anyway). An engine that does not
    infer (``infers`` false: the null engine) runs any precision label.
    """
    from scaler.engines.registry import BF16_ISA

    host, got = list(host_isa), set(guest_isa)
    missing = [flag for flag in host if flag not in got]
    warnings = []
    if missing:
        warnings.append(f"the guest CPU lacks {' '.join(missing)} that the host has: figures "
                        "of this VM measure that ISA difference too, not only virtualization")
    refusal = None
    if infers and precision == "bf16" and not got & set(BF16_ISA):
        refusal = (f"the guest CPU has neither {' nor '.join(BF16_ISA)}: bf16 cannot run "
                   "in this VM as on the host")
    host_int8 = [f for f in INT8_ISA if f in host]
    if infers and precision == "int8" and kvm and host_int8 and not got & set(
            INT8_ISA):
        refusal = (f"the guest CPU has none of the host's {' '.join(host_int8)}: int8 in "
                   "this VM would run a slower kernel than on the host")
    return missing, warnings, refusal


def default_memory_mb(worker_gb: float) -> int:
    """Guest memory for a worker of about ``worker_gb`` GB, rounded up to 128 MiB."""
    mb = worker_gb * 1024 + GUEST_OVERHEAD_MB
    return max(MIN_MEMORY_MB, int(-(-mb // 128) * 128))


def node_free_bytes(node: int, root: str = "/sys/devices/system/node") -> int | None:
    """Free plus reclaimable page-cache memory of one NUMA node, or None if unknown."""
    fields: dict[str, int] = {}
    try:
        with open(f"{root}/node{node}/meminfo") as f:
            for line in f:
                parts = line.split()  # Node 0 MemFree:  123 kB
                if len(parts) >= 4:
                    fields[parts[2].rstrip(":")] = int(parts[3]) * 1024
    except (OSError, ValueError):
        return None
    if "MemFree" not in fields:
        return None
    return fields["MemFree"] + fields.get("Active(file)", 0) + fields.get("Inactive(file)", 0)


def check_node_memory(partitions: Iterable[dict[str, Any]], memory_mb: int,
                      free: Callable[[int], int | None] = node_free_bytes) -> None:
    """Refuse when the VMs bound to a set of nodes cannot all fit in those nodes."""
    demand: dict[tuple[int, ...], int] = {}
    for part in partitions:
        nodes = tuple(part.get("nodes") or ())
        demand[nodes] = demand.get(nodes, 0) + memory_mb
    for nodes, mb in demand.items():
        sizes = [free(n) for n in nodes]
        if not nodes or any(s is None for s in sizes):
            continue
        have = sum(s for s in sizes if s is not None)
        if mb * 2**20 > have:
            count = mb // memory_mb
            raise UsageError(
                f"{count} VM(s) of {memory_mb} MiB bound to NUMA node(s) {format_cpulist(nodes)}"
                f" need {mb / 1024:.1f} GiB but the node(s) have {have / 2**30:.1f} GiB free: "
                "use a smaller --vm-memory or fewer instances")


def check_hugepages(plans: Iterable[VmPlan],
                    free: Callable[[int], int | None] = free_hugepages_2m) -> None:
    """Refuse when the free 2 MiB huge pages of a node cannot hold its VMs' guest nodes."""
    demand: dict[int, int] = {}
    for plan in plans:
        for node in plan.nodes:
            demand[node.host_node] = demand.get(node.host_node, 0) + node.memory_mb // 2
    for host_node, pages in sorted(demand.items()):
        have = free(host_node) or 0
        if pages > have:
            raise UsageError(
                f"--vm-hugepages: the VMs need {pages} free 2 MiB huge pages on NUMA node "
                f"{host_node} but it has {have}: reserve them first (echo N > /sys/devices/"
                f"system/node/node{host_node}/hugepages/hugepages-2048kB/nr_hugepages)")
