"""The machine's CPU topology, read from a sysfs tree into frozen dataclasses.

Physical cores are identified by (package, die, core id), never by CPU number: sibling
numbering differs between machines (n and n+cores on a Xeon, 0/1 adjacent on many cloud
VMs). Every reader takes a root laid out like ``/sys`` so that fixtures of other machines
can be read; only the real ``/sys`` is combined with this process's affinity and
``/proc/cpuinfo``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from affinity.cpulist import format_cpulist, parse_cpulist
from affinity.errors import CpuListError, TopologyError

# The instruction-set features that decide how fast fp32, bf16 and int8 inference can run.
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

# Hybrid Intel CPUs list their core types here (``ROOT/devices/cpu_core/cpus``, ...).
_CORE_KINDS = (("cpu_core", "performance"), ("cpu_atom", "efficiency"))


@dataclass(frozen=True)
class Cpu:
    """One logical CPU (hardware thread). Unknown fields of an offline CPU are -1."""

    id: int
    online: bool
    package: int
    die: int
    core_id: int
    node: int


@dataclass(frozen=True)
class Core:
    """One physical core: its online SMT siblings. ``kind`` is set on hybrid CPUs only."""

    package: int
    die: int
    core_id: int
    node: int
    cpus: tuple[int, ...]
    kind: str = ""

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.package, self.die, self.core_id)


@dataclass(frozen=True)
class Node:
    """A NUMA node: its online CPUs and memory. CPU-less nodes (CXL memory) are kept."""

    id: int
    cpus: tuple[int, ...]
    memory_bytes: int
    has_cpu: bool
    distances: tuple[int, ...]


@dataclass(frozen=True)
class Topology:
    """What the planner needs to know about a machine, and what results record about it.

    ``notes`` are one-line remarks on what the reader had to assume or found restricted
    (a CPU without topology folder, an affinity smaller than the online CPUs).
    """

    cpus: tuple[Cpu, ...]
    cores: tuple[Core, ...]
    nodes: tuple[Node, ...]
    packages: tuple[int, ...]
    usable_cpus: tuple[int, ...]
    isa: tuple[str, ...]
    sysfs_root: str
    notes: tuple[str, ...] = field(default=())

    @cached_property
    def usable_cores(self) -> tuple[Core, ...]:
        """Cores with at least one usable CPU, each restricted to its usable CPUs."""
        usable = set(self.usable_cpus)
        restricted = (
            replace(core, cpus=tuple(c for c in core.cpus if c in usable)) for core in self.cores
        )
        return tuple(core for core in restricted if core.cpus)

    @property
    def threads_per_core(self) -> int:
        """The most usable hardware threads any one core has."""
        return max((len(core.cpus) for core in self.usable_cores), default=0)

    @property
    def cpu_nodes(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.has_cpu)

    @property
    def online_cpus(self) -> tuple[int, ...]:
        return tuple(cpu.id for cpu in self.cpus if cpu.online)

    @property
    def offline_cpus(self) -> tuple[int, ...]:
        return tuple(cpu.id for cpu in self.cpus if not cpu.online)

    @property
    def dies(self) -> int:
        """Distinct (package, die) pairs among the online CPUs."""
        return len({(cpu.package, cpu.die) for cpu in self.cpus if cpu.online})

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``scaler topology --json``; counts are of usable cores and CPUs."""
        usable = set(self.usable_cpus)
        cores_by_node: dict[int, int] = {}
        for core in self.usable_cores:
            cores_by_node[core.node] = cores_by_node.get(core.node, 0) + 1
        return {
            "sysfs_root": self.sysfs_root,
            "packages": len(self.packages),
            "package_ids": list(self.packages),
            "dies": self.dies,
            "cores": len(self.usable_cores),
            "cpus": len(self.usable_cpus),
            "threads_per_core": self.threads_per_core,
            "usable_cpus": list(self.usable_cpus),
            "usable_cpulist": format_cpulist(self.usable_cpus),
            "online_cpus": list(self.online_cpus),
            "offline_cpus": list(self.offline_cpus),
            "nodes": [
                {
                    "id": node.id,
                    "cpus": list(node.cpus),
                    "usable_cpus": [c for c in node.cpus if c in usable],
                    "cores": cores_by_node.get(node.id, 0),
                    "memory_bytes": node.memory_bytes,
                    "has_cpu": node.has_cpu,
                    "distances": list(node.distances),
                }
                for node in self.nodes
            ],
            "physical_cores": [
                {
                    "package": core.package,
                    "die": core.die,
                    "core_id": core.core_id,
                    "node": core.node,
                    "cpus": list(core.cpus),
                    "kind": core.kind,
                }
                for core in self.usable_cores
            ],
            "isa": list(self.isa),
            "notes": list(self.notes),
        }


def read_isa(cpuinfo_path: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The :data:`ISA_FLAGS` present in the first ``flags`` line of a cpuinfo file."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                name, sep, value = line.partition(":")
                if sep and name.strip() == "flags":
                    found = set(value.split())
                    return tuple(flag for flag in ISA_FLAGS if flag in found)
    except OSError:
        return ()
    return ()


def read_topology(sysfs_root: str = "/sys", cpuinfo_path: str | None = None) -> Topology:
    """Read the CPU topology under ``sysfs_root``.

    On the real ``/sys`` the usable CPUs are the online CPUs this process may run on
    (``os.sched_getaffinity``, which reflects cpusets); for any other root they are that
    tree's online CPUs. Files the kernel leaves out on older versions are optional: no
    ``die_id`` means die 0, no ``devices/system/node`` folder means one node holding every
    CPU. Raises :class:`TopologyError` naming the file when the tree cannot be read.
    """
    real = os.path.realpath(sysfs_root) == os.path.realpath("/sys")
    cpu_dir = os.path.join(sysfs_root, "devices", "system", "cpu")
    if not os.path.isdir(cpu_dir):
        raise TopologyError(f"{sysfs_root} is not a sysfs tree: {cpu_dir} is missing")
    folders = _numbered(cpu_dir, "cpu")
    online = _read_online(cpu_dir, folders)
    if not online:
        raise TopologyError(f"{sysfs_root} is not a sysfs tree: no online CPU under {cpu_dir}")
    notes: list[str] = []
    kinds = _read_core_kinds(sysfs_root)
    nodes, node_of = _read_nodes(sysfs_root, online, real)
    cpus: list[Cpu] = []
    for cpu_id in sorted(folders | online):
        place = _read_cpu_place(cpu_dir, cpu_id, cpu_id in online)
        if place is None:
            notes.append(f"cpu{cpu_id} has no topology folder: counted as its own core")
            place = (0, 0, cpu_id)
        node = node_of[cpu_id] if cpu_id in node_of else _node_link(cpu_dir, cpu_id)
        if cpu_id in online and node < 0:
            raise TopologyError(f"cpu{cpu_id} is online but in no NUMA node under {sysfs_root}")
        cpus.append(Cpu(cpu_id, cpu_id in online, *place, node))
    usable = set(online)
    if real:
        usable &= os.sched_getaffinity(0)
        if len(usable) < len(online):
            notes.append(
                f"this process may use {len(usable)} of {len(online)} online CPUs "
                f"({format_cpulist(usable)}): affinity or cpuset"
            )
    if cpuinfo_path is None:
        cpuinfo_path = "/proc/cpuinfo" if real else _fixture_cpuinfo(sysfs_root)
    return Topology(
        cpus=tuple(cpus),
        cores=_group_cores(cpus, kinds),
        nodes=nodes,
        packages=tuple(sorted({cpu.package for cpu in cpus if cpu.online})),
        usable_cpus=tuple(sorted(usable)),
        isa=read_isa(cpuinfo_path) if cpuinfo_path else (),
        sysfs_root=sysfs_root,
        notes=tuple(notes),
    )


def _fixture_cpuinfo(sysfs_root: str) -> str | None:
    """A test tree may ship the machine's cpuinfo beside its ``sys`` folder."""
    path = os.path.join(os.path.dirname(os.path.normpath(sysfs_root)), "cpuinfo")
    return path if os.path.isfile(path) else None


def _group_cores(cpus: list[Cpu], kinds: dict[int, str]) -> tuple[Core, ...]:
    """Online CPUs grouped into physical cores by (package, die, core id)."""
    groups: dict[tuple[int, int, int], list[Cpu]] = {}
    for cpu in cpus:
        if cpu.online:
            groups.setdefault((cpu.package, cpu.die, cpu.core_id), []).append(cpu)
    cores = []
    for (package, die, core_id), members in sorted(groups.items()):
        first = members[0]
        cpu_ids = tuple(cpu.id for cpu in members)
        cores.append(Core(package, die, core_id, first.node, cpu_ids, kinds.get(first.id, "")))
    return tuple(cores)


def _read_online(cpu_dir: str, folders: set[int]) -> set[int]:
    """The global ``online`` list, else each CPU's ``online`` flag (cpu0 often has none)."""
    path = os.path.join(cpu_dir, "online")
    if os.path.exists(path):
        return set(_read_cpulist(path))
    online = set()
    for cpu_id in folders:
        flag = os.path.join(cpu_dir, f"cpu{cpu_id}", "online")
        if not os.path.exists(flag) or _read_int(flag) == 1:
            online.add(cpu_id)
    return online


def _read_cpu_place(cpu_dir: str, cpu_id: int, online: bool) -> tuple[int, int, int] | None:
    """(package, die, core id); None for an online CPU without ``topology/`` (some
    containers' minimal sysfs); -1s for an offline one, whose folder the kernel removes."""
    topo = os.path.join(cpu_dir, f"cpu{cpu_id}", "topology")
    if not os.path.isdir(topo):
        return None if online else (-1, -1, -1)
    package = _read_int(os.path.join(topo, "physical_package_id"))
    die_path = os.path.join(topo, "die_id")
    die = _read_int(die_path) if os.path.exists(die_path) else 0
    return (package, die, _read_int(os.path.join(topo, "core_id")))


def _node_link(cpu_dir: str, cpu_id: int) -> int:
    """The node named by a ``cpuN/nodeM`` link, -1 if there is none."""
    folder = os.path.join(cpu_dir, f"cpu{cpu_id}")
    found = _numbered(folder, "node") if os.path.isdir(folder) else set()
    return min(found) if found else -1


def _read_nodes(
    sysfs_root: str, online: set[int], real: bool
) -> tuple[tuple[Node, ...], dict[int, int]]:
    """The NUMA nodes and the node of each CPU they list.

    Without a node folder (a kernel built without NUMA) one node 0 holds every CPU.
    """
    node_dir = os.path.join(sysfs_root, "devices", "system", "node")
    ids = _numbered(node_dir, "node") if os.path.isdir(node_dir) else set()
    if not ids:
        memory = _meminfo_total("/proc/meminfo") if real else 0
        cpus = tuple(sorted(online))
        return (Node(0, cpus, memory, True, ()),), dict.fromkeys(cpus, 0)
    nodes = []
    node_of: dict[int, int] = {}
    for node_id in sorted(ids):
        folder = os.path.join(node_dir, f"node{node_id}")
        listed = _read_cpulist(os.path.join(folder, "cpulist"))
        for cpu in listed:
            node_of.setdefault(cpu, node_id)
        cpus = tuple(c for c in listed if c in online)
        distance_path = os.path.join(folder, "distance")
        distances = _read_ints(distance_path) if os.path.exists(distance_path) else ()
        memory = _meminfo_total(os.path.join(folder, "meminfo"))
        nodes.append(Node(node_id, cpus, memory, bool(cpus), distances))
    return tuple(nodes), node_of


def _read_core_kinds(sysfs_root: str) -> dict[int, str]:
    """CPU -> "performance"/"efficiency" on hybrid Intel CPUs; empty elsewhere."""
    kinds: dict[int, str] = {}
    for folder, kind in _CORE_KINDS:
        path = os.path.join(sysfs_root, "devices", folder, "cpus")
        if os.path.exists(path):
            kinds.update(dict.fromkeys(_read_cpulist(path), kind))
    return kinds


def _meminfo_total(path: str) -> int:
    """MemTotal in bytes from a (node) meminfo file; 0 when the file is absent."""
    if not os.path.exists(path):
        return 0
    for line in _read_text(path).splitlines():
        match = re.search(r"MemTotal:\s*([0-9]+)\s*kB", line)
        if match:
            return int(match.group(1)) * 1024
    raise TopologyError(f"{path}: no 'MemTotal: N kB' line")


def _numbered(folder: str, prefix: str) -> set[int]:
    """N for each entry named ``<prefix>N`` in a folder."""
    pattern = re.compile(re.escape(prefix) + r"([0-9]+)")
    found = set()
    for name in os.listdir(folder):
        match = pattern.fullmatch(name)
        if match:
            found.add(int(match.group(1)))
    return found


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise TopologyError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_cpulist(path: str) -> tuple[int, ...]:
    try:
        return parse_cpulist(_read_text(path))
    except CpuListError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def _read_int(path: str) -> int:
    text = _read_text(path).strip()
    if not re.fullmatch(r"-?[0-9]+", text):
        raise TopologyError(f"{path}: expected an integer, found {text!r}")
    return int(text)


def _read_ints(path: str) -> tuple[int, ...]:
    text = _read_text(path)
    words = text.split()
    if not all(re.fullmatch(r"[0-9]+", word) for word in words):
        raise TopologyError(f"{path}: expected integers, found {text.strip()!r}")
    return tuple(int(word) for word in words)
