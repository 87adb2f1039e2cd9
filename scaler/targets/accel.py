"""Which accelerator a VM gets (KVM or TCG emulation), why, and what QEMU and KVM can do.

``detect_accel`` asks the machine itself, in the order a failure is most useful to hear:

1. the CPU advertises ``vmx``/``svm`` (some cloud VMs expose a ``/dev/kvm`` that cannot run a
   stock guest kernel without nested virtualization);
2. ``/dev/kvm`` exists and this user may open it (root or the ``kvm`` group);
3. it speaks KVM API 12 (``KVM_GET_API_VERSION``);
4. ``KVM_CREATE_VM`` works: an API version answers even where creating a VM is refused
   (a locked-down or exhausted host, a module loaded without the CPU's support);
5. the QEMU binary was built with KVM (``-accel help``).

``resolve_accel`` turns ``--accel auto|kvm|tcg`` into an :class:`Accel`; ``kvm`` refuses with
a one-line :class:`UsageError` naming the first reason that failed. ``probe_qemu`` starts
QEMU once without a guest (``-machine none``, as libvirt does to learn a binary's
capabilities) and asks it over QMP for its version, the vCPU limit of the ``q35`` machine and
the CPU features a guest of ``-cpu host`` (KVM) or ``-cpu max`` (TCG) would see.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from affinity.topology import ISA_FLAGS
from scaler.errors import UsageError

KVM_DEVICE = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_API_VERSION = 12
KVM_CAP_NR_VCPUS = 9  # recommended vCPUs per VM
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_X2APIC_API = 129
KVM_CAP_X86_DISABLE_EXITS = 143  # bit mask of the exits a guest may skip (-overcommit cpu-pm)
DISABLE_EXITS_HLT = 2
Q35_MAX_CPUS = 288  # pc-q35 up to QEMU 8.0; newer machine types say more (query-machines)
ACCELS = ("auto", "kvm", "tcg")
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Accel:
    """The accelerator VMs get and why; ``caps`` holds what KVM reported (cpu-pm exits,
    vCPU limits) when it is KVM."""

    name: str  # kvm or tcg
    reason: str
    caps: dict[str, int] = field(default_factory=dict)

    @property
    def emulated(self) -> bool:
        return self.name != "kvm"

    @property
    def cpu_pm(self) -> bool:
        """KVM lets a guest halt without exiting (what ``-overcommit cpu-pm=on`` needs)."""
        return self.name == "kvm" and bool(self.caps.get("disable_exits", 0) & DISABLE_EXITS_HLT)

    def to_dict(self) -> dict[str, Any]:
        return {"accel": self.name, "accel_reason": self.reason, "kvm_caps": dict(self.caps)}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The flags of the first CPU in a cpuinfo file (empty when unreadable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep and name.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def detect_accel(cpuinfo: str = "/proc/cpuinfo", device: str = KVM_DEVICE,
                 qemu: str | None = None, vm_type: int = 0) -> Accel:
    """KVM when every check of the module doc passes, else TCG with the first reason."""
    flags = cpu_flags(cpuinfo)
    if "vmx" not in flags and "svm" not in flags:
        return Accel("tcg", "the CPU has no vmx/svm flag (no hardware virtualization here; "
                            "in a cloud VM, nested virtualization is off)")
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return Accel("tcg", f"{device} does not exist (kvm_intel/kvm_amd module not loaded?)")
    except PermissionError:
        return Accel("tcg", f"no permission to open {device} (run as root or join the "
                            "kvm group)")
    except OSError as exc:
        return Accel("tcg", f"cannot open {device}: {exc.strerror}")
    try:
        try:
            version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        except OSError as exc:
            return Accel("tcg", f"{device} does not answer KVM_GET_API_VERSION: {exc.strerror}")
        if version != KVM_API_VERSION:
            return Accel("tcg", f"{device} speaks KVM API {version}, not {KVM_API_VERSION}")
        try:
            os.close(fcntl.ioctl(fd, KVM_CREATE_VM, vm_type))
        except OSError as exc:
            return Accel("tcg", f"KVM_CREATE_VM on {device} failed: {exc.strerror}")
        caps = {"disable_exits": _extension(fd, KVM_CAP_X86_DISABLE_EXITS),
                "max_vcpus": _extension(fd, KVM_CAP_MAX_VCPUS),
                "recommended_vcpus": _extension(fd, KVM_CAP_NR_VCPUS),
                "x2apic_api": _extension(fd, KVM_CAP_X2APIC_API)}
    finally:
        os.close(fd)
    if qemu is not None:
        accels = qemu_accels(qemu)
        if accels is not None and "kvm" not in accels:
            return Accel("tcg", f"{qemu} was built without KVM (-accel help lists "
                                f"{', '.join(sorted(accels)) or 'nothing'})")
    return Accel("kvm", f"vmx/svm present, {device} creates VMs", caps)


def _extension(fd: int, cap: int) -> int:
    with contextlib.suppress(OSError):
        return int(fcntl.ioctl(fd, KVM_CHECK_EXTENSION, cap))
    return 0


def parse_accel_help(text: str) -> set[str]:
    """Accelerator names from ``qemu -accel help`` (a heading line, then one per line)."""
    return {line.strip() for line in text.splitlines()[1:] if line.strip()}


def qemu_accels(qemu: str) -> set[str] | None:
    """The accelerators a QEMU binary was built with; None when it cannot be asked."""
    try:
        done = subprocess.run([qemu, "-accel", "help"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_accel_help(done.stdout) if done.returncode == 0 else None


def resolve_accel(requested: str = "auto", **detect: Any) -> Accel:
    """``--accel``: ``tcg`` as asked, ``kvm`` or a one-line UsageError saying why not,
    ``auto`` whatever :func:`detect_accel` finds."""
    if requested not in ACCELS:
        raise UsageError(f"unknown --accel {requested!r}: choose from {', '.join(ACCELS)}")
    if requested == "tcg":
        return Accel("tcg", "TCG emulation as asked (--accel tcg)")
    found = detect_accel(**detect)
    if requested == "kvm" and found.emulated:
        raise UsageError(f"--accel kvm: KVM cannot be used here: {found.reason}")
    return found


# -- what QEMU itself says -------------------------------------------------------------------


@dataclass(frozen=True)
class QemuFacts:
    """What a QEMU binary told over QMP without booting anything."""

    version: str
    q35_max_cpus: int
    guest_isa: tuple[str, ...]  # the ISA_FLAGS a guest of this accel's CPU model sees
    cpu_model: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "q35_max_cpus": self.q35_max_cpus,
                "guest_isa_predicted": list(self.guest_isa), "cpu_model": self.cpu_model}


def probe_qemu(qemu: str, accel: str, timeout_s: float = PROBE_TIMEOUT_S) -> QemuFacts:
    """Ask ``qemu`` (started with ``-machine none``, no guest) for its facts; UsageError
    with QEMU's own last words when it cannot start with this accelerator."""
    model = "host" if accel == "kvm" else "max"
    commands = [{"execute": "qmp_capabilities"}, {"execute": "query-version"},
                {"execute": "query-machines"},
                {"execute": "query-cpu-model-expansion",
                 "arguments": {"type": "full", "model": {"name": model}}},
                {"execute": "quit"}]
    argv = [qemu, "-machine", "none", "-accel", "kvm" if accel == "kvm" else "tcg",
            "-nodefaults", "-no-user-config", "-display", "none", "-qmp", "stdio"]
    try:
        done = subprocess.run(argv, input="".join(json.dumps(c) + "\n" for c in commands),
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UsageError(f"{qemu} did not answer QMP within {timeout_s:g} s") from None
    except OSError as exc:
        raise UsageError(f"cannot run {qemu}: {exc.strerror or exc}") from None
    replies = []
    for line in done.stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            message = json.loads(line)
            if isinstance(message, dict) and ("return" in message or "error" in message):
                replies.append(message)
    if len(replies) < 4:
        last = [line for line in done.stderr.splitlines() if line.strip()]
        said = last[-1].strip() if last else f"exit code {done.returncode}"
        raise UsageError(f"{qemu} cannot start with -accel {argv[4]}: {said}")
    return parse_qmp_facts(replies[1:4], model)


def parse_qmp_facts(replies: list[dict[str, Any]], model: str) -> QemuFacts:
    """QemuFacts from the replies to query-version, query-machines and
    query-cpu-model-expansion (an ``error`` reply leaves that fact unknown)."""
    version_reply, machines_reply, expansion_reply = (r.get("return") for r in replies)
    version = ""
    if isinstance(version_reply, dict):
        q = version_reply.get("qemu", {})
        version = f"{q.get('major')}.{q.get('minor')}.{q.get('micro')}"
    max_cpus = Q35_MAX_CPUS
    for machine in machines_reply if isinstance(machines_reply, list) else []:
        if machine.get("alias") == "q35" or machine.get("name") == "q35":
            max_cpus = int(machine.get("cpu-max", Q35_MAX_CPUS))
    props = (expansion_reply or {}).get("model", {}).get("props", {}) if isinstance(
        expansion_reply, dict) else {}
    on = {name.replace("-", "_") for name, value in props.items() if value is True}
    return QemuFacts(version, max_cpus, tuple(f for f in ISA_FLAGS if f in on), model)
