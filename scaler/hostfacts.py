"""Host facts that change a measurement, bare metal or VM: frequency governor and turbo,
transparent huge pages, KSM, huge pages, whether this machine is itself a VM, and the CPU
time stolen from it; its boot id (workers of one boot share one monotonic clock).

Every reader takes a ``root`` laid out like ``/`` (``root/sys/...``, ``root/proc/...``) so
tests can read trees they wrote; a file that is absent (containers, VMs without cpufreq)
gives ``None``, never an error: these facts describe, they do not decide.
Standard library only, no heavy imports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from affinity.cpulist import format_cpulist

USER_HZ = 100  # /proc/stat ticks per second on x86 Linux (USER_HZ, not CONFIG_HZ)


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def bracketed(text: str | None) -> str | None:
    """The selected word of a sysfs choice file: ``always [madvise] never`` -> madvise."""
    if text is None:
        return None
    found = re.search(r"\[([^\]]+)\]", text)
    return found.group(1) if found else text.split()[0] if text.split() else None


def governors(root: str = "/", cpus: Iterable[int] | None = None) -> dict[str, str] | None:
    """cpufreq governor -> cpulist of the CPUs using it (all online CPUs by default);
    None where there is no cpufreq (most VMs and containers)."""
    cpu_dir = "sys/devices/system/cpu"
    if cpus is None:
        names = os.listdir(os.path.join(root, cpu_dir)) if os.path.isdir(
            os.path.join(root, cpu_dir)) else []
        cpus = sorted(int(n[3:]) for n in names if re.fullmatch(r"cpu[0-9]+", n))
    found: dict[str, list[int]] = {}
    for cpu in cpus:
        gov = _read(root, f"{cpu_dir}/cpu{cpu}/cpufreq/scaling_governor")
        if gov:
            found.setdefault(gov, []).append(cpu)
    return {g: format_cpulist(c) for g, c in sorted(found.items())} or None


def turbo(root: str = "/") -> bool | None:
    """Whether turbo/boost is allowed: intel_pstate's ``no_turbo`` or cpufreq's ``boost``."""
    no_turbo = _read(root, "sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = _read(root, "sys/devices/system/cpu/cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1"
    return None


def hugepages(root: str = "/") -> dict[str, dict[str, int]]:
    """Per NUMA node, 2 MiB huge pages total and free (empty when none are configured)."""
    out: dict[str, dict[str, int]] = {}
    node_dir = os.path.join(root, "sys/devices/system/node")
    names = os.listdir(node_dir) if os.path.isdir(node_dir) else []
    for name in sorted(n for n in names if re.fullmatch(r"node[0-9]+", n)):
        base = f"sys/devices/system/node/{name}/hugepages/hugepages-2048kB"
        total, free = _read(root, f"{base}/nr_hugepages"), _read(root, f"{base}/free_hugepages")
        if total and free and total.isdigit() and free.isdigit() and int(total):
            out[name[4:]] = {"total": int(total), "free": int(free)}
    return out


def free_hugepages_2m(node: int, root: str = "/") -> int | None:
    """Free 2 MiB huge pages of one node; None when the node has no such folder."""
    text = _read(root, f"sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/"
                       "free_hugepages")
    return int(text) if text and text.isdigit() else None


def cpu_flags(root: str = "/") -> set[str]:
    text = _read(root, "proc/cpuinfo") or ""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "flags":
            return set(value.split())
    return set()


@dataclass(frozen=True)
class CpuTimes:
    """The first (all-CPU) line of ``/proc/stat``, in ticks."""

    total: int
    idle: int
    steal: int

    def steal_share_since(self, earlier: CpuTimes) -> float | None:
        """Stolen share of the CPU time that passed since ``earlier``."""
        total = self.total - earlier.total
        return (self.steal - earlier.steal) / total if total > 0 else None


def parse_cpu_line(line: str) -> CpuTimes | None:
    """``cpu  user nice system idle iowait irq softirq steal guest guest_nice``."""
    words = line.split()
    if len(words) < 9 or words[0] != "cpu" or not all(w.isdigit() for w in words[1:]):
        return None
    values = [int(w) for w in words[1:]]
    # guest and guest_nice are already counted in user and nice
    return CpuTimes(total=sum(values[:8]), idle=values[3] + values[4], steal=values[7])


def cpu_times(root: str = "/") -> CpuTimes | None:
    text = _read(root, "proc/stat") or ""
    return parse_cpu_line(text.splitlines()[0]) if text else None


def host_facts(root: str = "/", cpus: Iterable[int] | None = None) -> dict[str, Any]:
    """The facts above, as recorded in results (``cpus``: the CPUs whose governor counts)."""
    flags = cpu_flags(root)
    times = cpu_times(root)
    thp = {"enabled": bracketed(_read(root, "sys/kernel/mm/transparent_hugepage/enabled")),
           "defrag": bracketed(_read(root, "sys/kernel/mm/transparent_hugepage/defrag"))}
    ksm = _read(root, "sys/kernel/mm/ksm/run")
    return {
        "cpufreq_driver": _read(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_driver"),
        "governors": governors(root, cpus),
        "turbo": turbo(root),
        "thp": thp,
        "ksm_running": None if ksm is None else ksm == "1",
        "hugepages_2m": hugepages(root),
        "hypervisor": "hypervisor" in flags,  # this machine is itself a VM (nested if VMs run)
        "virtualization": sorted(flags & {"vmx", "svm"}),
        "steal_share_since_boot": (round(times.steal / times.total, 6)
                                   if times and times.total else None),
    }


def boot_id() -> str:
    """Workers with the same boot id share one monotonic clock (their windows compare)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""
