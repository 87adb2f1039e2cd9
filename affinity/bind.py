"""Binding applied inside a worker process, before TensorFlow is imported.

CPU affinity (``sched_setaffinity``), memory policy bound to the partition's NUMA nodes
(``set_mempolicy`` through ctypes), and thread settings sized from the partition rather
than ``os.cpu_count()``. Each step is read back so results show what really happened.
Containers commonly refuse ``set_mempolicy``: CPU pinning then goes on alone and the
binding records ``memory_bound=False`` with the reason, rather than failing or hiding it.

Both the affinity and the memory policy belong to the calling thread and are inherited by
threads created later: call :func:`bind` early, from the main thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from affinity.cpulist import format_cpulist
from affinity.errors import BindError

# Thread settings as the Intel launchers set them for a pinned instance: oneDNN/OpenMP
# threads packed onto the partition's CPUs, spinning briefly, not printing settings.
PINNED_KMP_AFFINITY = "granularity=fine,compact,1,0"
STYLES = ("tuned", "defaults", "model-zoo")  # the --threading styles (scaler.engines.base)
OPENMP_KEYS = ("OMP_NUM_THREADS", "KMP_AFFINITY", "KMP_BLOCKTIME", "KMP_SETTINGS",
               "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES")
THREAD_ENV_KEYS = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "KMP_SETTINGS",
)

# <linux/mempolicy.h>
_MPOL_MODES = {
    0: "default",
    1: "preferred",
    2: "bind",
    3: "interleave",
    4: "local",
    5: "preferred_many",
    6: "weighted_interleave",
}
_MPOL_BIND = 2
_MPOL_MODE_FLAGS = (1 << 15) | (1 << 14) | (1 << 13)  # static, relative nodes; balancing
# (set_mempolicy, get_mempolicy) syscall numbers: glibc has no wrapper, libnuma may be absent
_SYSCALLS = {"x86_64": (238, 239), "aarch64": (237, 236), "ppc64le": (261, 260)}
_MIGRATE_PAGES = {"x86_64": 256, "aarch64": 238, "ppc64le": 258}
_ONLINE_NODES = "/sys/devices/system/node/online"
_MASK_BITS = 1024  # MAX_NUMNODES of distribution kernels (NODES_SHIFT 10)
_ULONG_BITS = ctypes.sizeof(ctypes.c_ulong) * 8


def thread_env(threads: int, inter_op_threads: int = 1, pinned: bool = True,
               style: str = "tuned") -> dict[str, str]:
    """Environment for TensorFlow/oneDNN/OpenMP thread pools of ``threads`` threads.

    ``style`` is the ``--threading`` style. ``tuned``: ``pinned=False`` (shared placement)
    disables OpenMP affinity (N unpinned copies that each pack their threads onto the same
    first CPUs would collide) and every instance waits 1 ms before sleeping. ``defaults``:
    no OpenMP variable at all (:func:`bind` also removes inherited ones): each runtime as it
    comes. ``model-zoo``: Intel Model Zoo's launcher, compact affinity and blocktime 1 ms
    whether pinned or not (unpinned instances then stack thread k on the same CPU k).
    """
    if threads < 1 or inter_op_threads < 1:
        raise BindError(f"thread counts must be at least 1, got {threads} and {inter_op_threads}")
    if style not in STYLES:
        raise BindError(f"unknown threading style {style!r}; choose from {', '.join(STYLES)}")
    if style == "defaults":
        return {"TF_NUM_INTRAOP_THREADS": str(threads),
                "TF_NUM_INTEROP_THREADS": str(inter_op_threads)}
    if style == "model-zoo":
        pinned = True  # compact binding inside whatever the instance is allowed
    return {
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(inter_op_threads),
        "KMP_AFFINITY": PINNED_KMP_AFFINITY if pinned else "disabled",
        "KMP_BLOCKTIME": "1",
        "KMP_SETTINGS": "0",
    }


@dataclass(frozen=True)
class Binding:
    """What :func:`bind` asked for and what the kernel reports afterwards."""

    cpus: tuple[int, ...]
    requested_cpus: tuple[int, ...] | None
    nodes: tuple[int, ...]
    memory_bound: bool
    memory_reason: str
    memory_policy: str
    threads: int
    inter_op_threads: int = 1
    threading: str = "tuned"  # the --threading style its thread settings follow
    memory_migrated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpus": list(self.cpus),
            "cpulist": format_cpulist(self.cpus),
            "requested_cpus": None if self.requested_cpus is None else list(self.requested_cpus),
            "nodes": list(self.nodes),
            "memory_bound": self.memory_bound,
            "memory_reason": self.memory_reason,
            "memory_policy": self.memory_policy,
            "memory_migrated": self.memory_migrated,
            "threads": self.threads,
            "inter_op_threads": self.inter_op_threads,
            "threading": self.threading,
        }


def bind(
    cpus: Iterable[int] | None,
    nodes: Iterable[int] | None = None,
    threads: int | None = None,
    inter_op_threads: int = 1,
    threading: str = "tuned",
) -> Binding:
    """Pin the calling process to ``cpus`` and its memory to ``nodes``, and export the
    thread settings; ``cpus=None`` keeps the current affinity (shared placement).

    Threads default to the number of CPUs the process ends up allowed on; under the
    ``model-zoo`` style they are the physical cores of those CPUs and the inter-op threads
    their sockets, as Model Zoo's launcher sized them. Raises
    :class:`BindError` when the CPUs are refused or the kernel grants fewer than asked;
    a refused memory policy is recorded, not raised.
    """
    requested = None if cpus is None else tuple(sorted(set(cpus)))
    if requested is not None:
        if not requested:
            raise BindError("cannot pin to an empty CPU list")
        try:
            os.sched_setaffinity(0, requested)
        except (OSError, ValueError) as exc:
            raise BindError(f"cannot pin to CPUs {format_cpulist(requested)}: {exc}") from None
    effective = tuple(sorted(os.sched_getaffinity(0)))
    if requested is not None and effective != requested:
        raise BindError(
            f"asked for CPUs {format_cpulist(requested)} but the kernel allows only "
            f"{format_cpulist(effective)} (cpuset?)"
        )
    wanted = () if nodes is None else tuple(sorted(set(nodes)))
    if nodes is None:
        reason = "not requested"
    elif not wanted:
        raise BindError("cannot bind memory to an empty node list")
    else:
        reason = _set_membind(wanted)
    policy = read_mempolicy()
    bound = bool(wanted) and reason == "bound" and policy == f"bind:{format_cpulist(wanted)}"
    if reason == "bound" and not bound:
        reason = f"set_mempolicy succeeded but the policy reads back as {policy}"
    migrated = migrate_own_pages(wanted) if bound else ""
    count = threads if threads is not None else len(effective)
    if threading == "model-zoo":
        count, inter_op_threads = cores_and_sockets(effective)
    env = thread_env(count, inter_op_threads, pinned=requested is not None, style=threading)
    for key in OPENMP_KEYS:  # a style says every OpenMP variable; none comes from the shell
        os.environ.pop(key, None)
    os.environ.update(env)
    return Binding(
        cpus=effective,
        requested_cpus=requested,
        nodes=wanted,
        memory_bound=bound,
        memory_reason=reason,
        memory_policy=policy,
        threads=count,
        inter_op_threads=inter_op_threads,
        threading=threading,
        memory_migrated=migrated,
    )


def cores_and_sockets(cpus: Iterable[int], sysfs_root: str = "/sys") -> tuple[int, int]:
    """Physical cores and sockets among ``cpus`` (from sysfs; a CPU whose topology cannot
    be read counts as a core and a socket of its own)."""
    cores: set[tuple[int, ...]] = set()
    sockets: set[int] = set()
    for cpu in cpus:
        topo = os.path.join(sysfs_root, f"devices/system/cpu/cpu{cpu}/topology")
        try:
            with open(os.path.join(topo, "physical_package_id")) as f:
                package = int(f.read())
            with open(os.path.join(topo, "core_id")) as f:
                core = int(f.read())
        except (OSError, ValueError):
            package, core = -1 - cpu, cpu
        cores.add((package, core))
        sockets.add(package)
    return max(len(cores), 1), max(len(sockets), 1)


def current_binding() -> dict[str, Any]:
    """The calling process's affinity, memory policy and thread settings, read only."""
    cpus = sorted(os.sched_getaffinity(0))
    return {
        "cpus": cpus,
        "cpulist": format_cpulist(cpus),
        "memory_policy": read_mempolicy(),
        "env": {key: os.environ[key] for key in THREAD_ENV_KEYS if key in os.environ},
    }


def read_mempolicy() -> str:
    """The calling thread's memory policy: ``default``, ``bind:0-1``, ``local``, ... or
    ``unknown (reason)`` when the kernel will not say."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return f"unknown (no get_mempolicy syscall number for {platform.machine()})"
    mode = ctypes.c_int(0)
    mask = _nodemask(())
    failed = _syscall(numbers[1], ctypes.byref(mode), mask, _MASK_BITS + 1, None, 0)
    if failed:
        return f"unknown (get_mempolicy: {failed})"
    name = _MPOL_MODES.get(mode.value & ~_MPOL_MODE_FLAGS, f"mode {mode.value}")
    nodes = [
        bit for bit in range(_MASK_BITS) if mask[bit // _ULONG_BITS] >> (bit % _ULONG_BITS) & 1
    ]
    return f"{name}:{format_cpulist(nodes)}" if nodes else name


def _set_membind(nodes: tuple[int, ...]) -> str:
    """``set_mempolicy(MPOL_BIND, nodes)``: "bound", or why the kernel refused."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return f"no set_mempolicy syscall number for {platform.machine()}"
    if nodes[-1] >= _MASK_BITS or nodes[0] < 0:
        # not format_cpulist: it refuses the negative numbers this message is about
        return f"node numbers {','.join(map(str, nodes))} outside 0-{_MASK_BITS - 1}"
    failed = _syscall(numbers[0], _MPOL_BIND, _nodemask(nodes), _MASK_BITS + 1)
    return f"set_mempolicy refused: {failed}" if failed else "bound"


def migrate_own_pages(nodes: tuple[int, ...], online: str = _ONLINE_NODES) -> str:
    """Move the pages this process touched before binding (the interpreter, its imports:
    placed on whatever node it started on) to ``nodes``: ``set_mempolicy`` only places new
    pages. Read back in a two-node guest, where a worker bound to node 1 otherwise kept
    what it allocated before on node 0. Returns what happened, for the record."""
    try:
        with open(online) as f:
            from affinity.cpulist import parse_cpulist

            others = sorted(set(parse_cpulist(f.read().strip())) - set(nodes))
    except (OSError, ValueError):
        return "not moved (no NUMA nodes in sysfs)"
    if not others:
        return "nothing to move (no other node)"
    number = _MIGRATE_PAGES.get(platform.machine())
    if number is None:
        return f"not moved (no migrate_pages syscall number for {platform.machine()})"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    left = libc.syscall(ctypes.c_long(number), ctypes.c_long(0), ctypes.c_long(_MASK_BITS + 1),
                        _nodemask(others), _nodemask(nodes))
    if left < 0:
        code = ctypes.get_errno()
        return f"not moved (migrate_pages: {errno.errorcode.get(code, str(code))})"
    return (f"moved from node(s) {format_cpulist(others)}"
            + (f", {left} page(s) could not be moved" if left else ""))


def _nodemask(nodes: Iterable[int]) -> ctypes.Array[ctypes.c_ulong]:
    mask = (ctypes.c_ulong * (_MASK_BITS // _ULONG_BITS))()
    for node in nodes:
        mask[node // _ULONG_BITS] |= 1 << (node % _ULONG_BITS)
    return mask


def _syscall(number: int, *args: Any) -> str:
    """Run a raw syscall; "" on success, else the errno's name and text."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    if libc.syscall(ctypes.c_long(number), *converted) == -1:
        code = ctypes.get_errno()
        return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
    return ""
