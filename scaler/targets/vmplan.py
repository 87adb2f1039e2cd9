"""The VM the ``vm`` placement boots for one partition, computed without booting it.

One pure function, :func:`vm_plan`, decides everything about a VM from the host topology,
the partition and a few options, and :meth:`VmPlan.argv` turns that into QEMU's command
line. ``VmTarget.start`` and ``scaler plan --placement vm`` both call them, so what a user
inspects in the dry run is what runs.

The guest mirrors the partition as a hypervisor admin would set up a dedicated VM:

- **vCPU order.** QEMU numbers vCPU k as thread ``k % threads`` of core
  ``(k // threads) % cores`` of socket ``k // (cores * threads)``: siblings are
  consecutive vCPUs. The partition's CPUs are therefore put in (package, NUMA node, core,
  sibling) order before ``-smp`` is written and vCPU k is pinned to the k-th of them, so
  guest siblings are host siblings whatever the host's numbering (n/n+cores on Xeon and
  EPYC, adjacent on many cloud VMs).
- **-smp.** ``threads`` = the partition's threads per core when every core has the same
  count (else 1, with a note: the guest cannot be told of uneven cores); one guest socket
  per host package when the partition's cores are shared evenly between packages.
- **NUMA.** One guest node per host node of the partition, holding that node's vCPUs, with
  its own memory backend bound to that host node (``policy=bind``) and a share of the
  memory proportional to its vCPUs; node distances copied from the host.
- **Memory.** ``merge=off`` (no KSM merging of identical weights across VMs and nodes),
  ``prealloc=on`` (every page faulted in, on its node, before the guest runs), and with
  ``hugepages`` 2 MiB huge pages from a hugetlb memfd.
- **CPU (KVM).** ``-cpu host,migratable=off,host-cache-info=on``: the guest sees the host's
  caches (oneDNN and OpenVINO size their blocking from them) rather than QEMU's invented
  ones. With dedicated vCPUs (no CPU shared between partitions) ``kvm-hint-dedicated=on``
  and, where KVM allows guests to halt without exits, ``-overcommit cpu-pm=on``.
- **Limits.** APIC ids above 254 need x2APIC with interrupt remapping: the plan adds
  ``kernel-irqchip=split`` and an ``intel-iommu`` with ``intremap=on,eim=on`` (KVM only;
  refused under TCG). More vCPUs than the ``q35`` machine takes (288 up to QEMU 8.0, more
  in later machine types: ``max_vcpus``) is refused with what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist
from scaler.errors import UsageError
from scaler.targets.accel import Q35_MAX_CPUS

if TYPE_CHECKING:
    from affinity import Topology

SHARE_TAG = "scaler"  # 9p share k (a host folder the guest needs, see guest.py) is tag scalerK
PORT_NAME = "scaler"  # the virtio-serial port carrying the worker protocol
KERNEL_APPEND = "console=ttyS0 panic=-1 loglevel=4 quiet"
MEMORY_UNIT_MB = 2  # node shares are whole 2 MiB pages (huge pages when asked)
XAPIC_MAX_ID = 254  # 255 is the xAPIC broadcast id
MAX_PREALLOC_THREADS = 16
# TCG's "max" CPU is AMD's vendor without topoext: the guest kernel then finds no SMT and
# sees every vCPU as its own core (read back in the two-socket testbed); Intel's vendor makes
# it read the -smp threads from CPUID leaf 0xB, as a KVM guest does
TCG_CPU = "max,vendor=GenuineIntel"


@dataclass(frozen=True)
class VmOptions:
    """The choices that are not read from the topology."""

    accel: str = "kvm"  # kvm or tcg
    memory_mb: int = 512
    dedicated: bool = True  # no host CPU is shared with another partition
    cpu_pm: bool = True  # KVM lets guests halt without exits (KVM_CAP_X86_DISABLE_EXITS)
    hugepages: bool = False
    bind_memory: bool = True  # host-nodes + policy=bind (off where the kernel refuses mbind)
    max_vcpus: int = Q35_MAX_CPUS


@dataclass(frozen=True)
class GuestNode:
    """One guest NUMA node: its vCPUs (consecutive), host node, memory and distances."""

    id: int
    host_node: int
    vcpus: tuple[int, ...]
    memory_mb: int
    distances: tuple[int, ...] = ()  # to every guest node, host distances; () when unknown


@dataclass(frozen=True)
class Boot:
    """Paths and descriptors of one start; the dry run fills them with placeholders."""

    qemu: str
    kernel: str
    initrd: str
    qmp_fd: int | str
    shares: tuple[str, ...] = ()  # host folders shared read-only (guest.guest_root)


@dataclass(frozen=True)
class VmPlan:
    """Everything about one VM but the files of its start (see the module doc)."""

    index: int
    cpus: tuple[int, ...]  # host CPU of each vCPU, in vCPU order
    sockets: int
    cores: int  # per socket
    threads: int  # per core
    nodes: tuple[GuestNode, ...]
    options: VmOptions
    host_nodes: tuple[int, ...]  # the partition's memory nodes
    notes: tuple[str, ...] = field(default=())

    @property
    def vcpus(self) -> int:
        return len(self.cpus)

    @property
    def memory_mb(self) -> int:
        return sum(node.memory_mb for node in self.nodes)

    @property
    def max_apic_id(self) -> int:
        return apic_id(self.sockets - 1, self.cores - 1, self.threads - 1, self.cores,
                       self.threads)

    @property
    def x2apic(self) -> bool:
        """APIC ids above 254: x2APIC and interrupt remapping are needed."""
        return self.max_apic_id > XAPIC_MAX_ID

    @property
    def kvm(self) -> bool:
        return self.options.accel == "kvm"

    @property
    def hint_dedicated(self) -> bool:
        return self.kvm and self.options.dedicated

    @property
    def cpu_pm(self) -> bool:
        return self.kvm and self.options.dedicated and self.options.cpu_pm

    @property
    def smp(self) -> str:
        return (f"cpus={self.vcpus},sockets={self.sockets},cores={self.cores},"
                f"threads={self.threads}")

    def tuning(self) -> dict[str, Any]:
        """Each choice that changes speed, as recorded in results."""
        return {
            "cpu_model": "host,migratable=off,host-cache-info=on" if self.kvm else TCG_CPU,
            "host_cache_info": self.kvm, "kvm_hint_dedicated": self.hint_dedicated,
            "cpu_pm": self.cpu_pm, "dedicated_cpus": self.options.dedicated,
            "mem_merge": False, "prealloc": True, "hugepages": self.options.hugepages,
            "memory_bound": self.options.bind_memory, "x2apic_intremap": self.x2apic,
        }

    def to_dict(self, boot: Boot | None = None) -> dict[str, Any]:
        """The ``vm`` entry of ``scaler plan --placement vm --json`` and of results."""
        out: dict[str, Any] = {
            "vcpus": list(self.cpus),
            "smp": {"sockets": self.sockets, "cores": self.cores, "threads": self.threads},
            "numa_nodes": [node.host_node for node in self.nodes],
            "guest_nodes": [{"id": n.id, "host_node": n.host_node, "vcpus": list(n.vcpus),
                             "memory_mb": n.memory_mb} for n in self.nodes],
            "memory_mb": self.memory_mb, "accel": self.options.accel,
            "max_apic_id": self.max_apic_id, "tuning": self.tuning(),
            "notes": list(self.notes),
        }
        if boot is not None:
            out["argv"] = self.argv(boot)
        return out

    # -- QEMU's command line ------------------------------------------------------------

    def argv(self, boot: Boot) -> list[str]:
        machine = "q35"
        if len(self.nodes) == 1:
            machine += ",memory-backend=ram0"
        accel = "tcg,thread=multi"
        if self.kvm:
            accel = "kvm,kernel-irqchip=split" if self.x2apic else "kvm"
        cpu = TCG_CPU
        if self.kvm:
            cpu = "host,migratable=off,host-cache-info=on"
            if self.hint_dedicated:
                cpu += ",kvm-hint-dedicated=on"
        argv = [boot.qemu, "-name", f"scaler-vm{self.index},debug-threads=on", "-S",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-machine", machine, "-accel", accel, "-cpu", cpu]
        if self.cpu_pm:
            argv += ["-overcommit", "cpu-pm=on"]
        argv += ["-smp", self.smp, "-m", f"{self.memory_mb}M"]
        for node in self.nodes:
            argv += ["-object", self._backend(node)]
        if len(self.nodes) > 1:
            for node in self.nodes:
                argv += ["-numa", f"node,nodeid={node.id},cpus={format_cpulist(node.vcpus)},"
                                  f"memdev=ram{node.id}"]
            for node in self.nodes:
                for other, distance in enumerate(node.distances):
                    if other != node.id:
                        argv += ["-numa", f"dist,src={node.id},dst={other},val={distance}"]
        if self.x2apic:  # before the other PCI devices
            argv += ["-device", "intel-iommu,intremap=on,eim=on"]
        argv += ["-kernel", boot.kernel, "-initrd", boot.initrd, "-append", KERNEL_APPEND]
        for k, folder in enumerate(boot.shares):  # read-only, each at its own path in the guest
            argv += ["-fsdev", f"local,id=fs{k},path={_qemu_value(folder)},security_model=none,"
                               "readonly=on,multidevs=remap",
                     "-device", f"virtio-9p-pci,fsdev=fs{k},mount_tag={SHARE_TAG}{k}"]
        argv += [
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", "stdio,id=proto,signal=off",
            "-device", f"virtserialport,bus=vser.0,chardev=proto,name={PORT_NAME}",
            "-chardev", "file,id=console,path=/dev/stderr", "-serial", "chardev:console",
            "-chardev", f"socket,id=qmp,fd={boot.qmp_fd},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
        ]
        return argv

    def _backend(self, node: GuestNode) -> str:
        if self.options.hugepages:
            text = f"memory-backend-memfd,id=ram{node.id},size={node.memory_mb}M," \
                   "hugetlb=on,hugetlbsize=2M"
        else:
            text = f"memory-backend-ram,id=ram{node.id},size={node.memory_mb}M"
        if self.options.bind_memory:
            text += f",host-nodes={node.host_node},policy=bind"
        threads = max(1, min(len(node.vcpus), MAX_PREALLOC_THREADS))
        return text + f",prealloc=on,prealloc-threads={threads},merge=off"


def _qemu_value(text: str) -> str:
    """A value inside a QEMU ``key=value,...`` option: a comma is written twice."""
    return text.replace(",", ",,")


def apic_id(socket: int, core: int, thread: int, cores: int, threads: int) -> int:
    """QEMU's x86 APIC id: fields of ceil(log2(count)) bits, thread lowest (one die)."""
    thread_bits = (threads - 1).bit_length()
    core_bits = (cores - 1).bit_length()
    return (socket << (core_bits + thread_bits)) | (core << thread_bits) | thread


def vcpu_order(topology: Topology, cpus: Sequence[int]) -> list[tuple[int, tuple[int, int, int],
                                                                      int, int]]:
    """The partition's CPUs as (cpu, core key, package, node) in (package, node, core,
    sibling) order: siblings of a core consecutive, each node's CPUs consecutive."""
    wanted = set(cpus)
    rows = []
    found = set()
    for core in topology.cores:
        for sibling, cpu in enumerate(core.cpus):
            if cpu in wanted:
                rows.append(((core.package, core.node, core.die, core.core_id, sibling),
                             (cpu, core.key, core.package, core.node)))
                found.add(cpu)
    node_of = {cpu.id: cpu.node for cpu in topology.cpus}
    for cpu in sorted(wanted - found):  # not in any core (no topology folder): its own core
        node = node_of.get(cpu, 0)
        rows.append(((1 << 30, node, 0, cpu, 0), (cpu, (1 << 30, 0, cpu), 1 << 30, node)))
    return [row for _, row in sorted(rows)]


def vm_plan(topology: Topology, cpus: Sequence[int], nodes: Sequence[int], index: int = 0,
            options: VmOptions | None = None) -> VmPlan:
    """The VM for one partition (``cpus`` and its memory ``nodes``); UsageError when QEMU
    could not boot it (see Limits in the module doc)."""
    options = options or VmOptions()
    if not cpus:
        raise UsageError(f"partition {index} has no CPUs: a VM needs at least one vCPU")
    order = vcpu_order(topology, cpus)
    if len(order) > options.max_vcpus:
        raise UsageError(
            f"partition {index} has {len(order)} CPUs but QEMU's q35 machine takes at most "
            f"{options.max_vcpus} vCPUs: use more instances (-n), or leave out --smt")
    notes: list[str] = []
    per_core: dict[tuple[int, int, int], int] = {}
    package_cores: dict[int, int] = {}
    for _, key, package, _ in order:
        if key not in per_core:
            package_cores[package] = package_cores.get(package, 0) + 1
        per_core[key] = per_core.get(key, 0) + 1
    counts = set(per_core.values())
    sockets = 1
    if len(counts) == 1:
        threads, core_total = counts.pop(), len(per_core)
        if len(package_cores) > 1 and len(set(package_cores.values())) == 1:
            sockets = len(package_cores)  # guest sockets = host packages
        elif len(package_cores) > 1:
            notes.append("the partition's cores are spread unevenly over "
                         f"{len(package_cores)} packages: the guest sees one socket")
    else:
        threads, core_total = 1, len(order)
        notes.append("the partition's cores have different numbers of CPUs "
                     f"({', '.join(map(str, sorted(counts)))}): the guest sees "
                     f"{len(order)} single-thread cores in one socket, so it cannot tell "
                     "siblings apart")
    cores = core_total // sockets
    guest_nodes = _guest_nodes(topology, order, nodes, options, notes)
    plan = VmPlan(index, tuple(cpu for cpu, _, _, _ in order), sockets, cores, threads,
                  guest_nodes, options, tuple(nodes), tuple(notes))
    if plan.x2apic and not plan.kvm:
        raise UsageError(
            f"partition {index} needs APIC ids up to {plan.max_apic_id} (x2APIC with "
            "interrupt remapping), which this tool only sets up under KVM: use more "
            "instances (-n) or run on a host with KVM")
    if plan.x2apic:
        plan = VmPlan(plan.index, plan.cpus, sockets, cores, threads, guest_nodes, options,
                      tuple(nodes), (*notes, f"APIC ids up to {plan.max_apic_id}: x2APIC "
                                     "with interrupt remapping (intel-iommu, "
                                     "kernel-irqchip=split)"))
    return plan


def _guest_nodes(topology: Topology, order: list[tuple[int, tuple[int, int, int], int, int]],
                 nodes: Sequence[int], options: VmOptions, notes: list[str]
                 ) -> tuple[GuestNode, ...]:
    """One guest node per host node of the vCPUs, in vCPU order, memory shared by vCPUs."""
    host_nodes: list[int] = []
    vcpus: dict[int, list[int]] = {}
    for k, (_, _, _, node) in enumerate(order):
        if node not in vcpus:
            host_nodes.append(node)
            vcpus[node] = []
        vcpus[node].append(k)
    extra = sorted(set(nodes) - set(host_nodes))
    if extra:  # memory nodes without CPUs of the partition are not given to the guest
        notes.append(f"memory node(s) {format_cpulist(extra)} hold none of the partition's "
                     "CPUs and get no guest node")
    units = -(-options.memory_mb // MEMORY_UNIT_MB)
    total = len(order)
    shares = [units * len(vcpus[node]) // total for node in host_nodes]
    shares[-1] += units - sum(shares)
    if min(shares) < 1:
        raise UsageError(f"{options.memory_mb} MiB cannot be shared over "
                         f"{len(host_nodes)} guest NUMA nodes: give more --vm-memory")
    position = {node.id: k for k, node in enumerate(topology.nodes)}
    distance_rows = {node.id: node.distances for node in topology.nodes}
    out = []
    for guest_id, node in enumerate(host_nodes):
        row = distance_rows.get(node, ())
        distances: tuple[int, ...] = ()
        if len(host_nodes) > 1 and all(position.get(h, len(row)) < len(row)
                                       for h in host_nodes):
            distances = tuple(row[position[h]] for h in host_nodes)
        out.append(GuestNode(guest_id, node, tuple(vcpus[node]),
                             shares[guest_id] * MEMORY_UNIT_MB, distances))
    return tuple(out)


@dataclass(frozen=True)
class GuestPartition:
    """What the worker inside the VM binds to: all of the guest's CPUs and NUMA nodes."""

    cpus: tuple[int, ...]
    nodes: tuple[int, ...]

    @property
    def threads(self) -> int:
        return len(self.cpus)


def guest_partition(cpus: Sequence[int], nodes: Sequence[int],
                    topology: Topology | None = None) -> GuestPartition:
    """The guest's view of a partition: vCPUs 0..n-1 and guest nodes 0..m-1, m = the host
    nodes holding the partition's CPUs (all of ``nodes`` when no topology is given)."""
    count = len(nodes) or 1
    if topology is not None:
        node_of = {cpu.id: cpu.node for cpu in topology.cpus}
        count = len({node_of.get(cpu, -1) for cpu in cpus}) or 1
    return GuestPartition(tuple(range(len(cpus))), tuple(range(count)))
