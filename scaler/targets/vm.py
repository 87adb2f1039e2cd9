"""The ``vm`` target: one QEMU VM per instance, its vCPUs pinned 1:1 to the partition's CPUs.

What VM a partition gets (vCPU order with siblings adjacent, ``-smp``, guest NUMA nodes,
memory backends, CPU model and tuning, the QEMU command line) is decided by the pure
``vmplan.vm_plan``; this module starts and verifies it (see ``guest.py`` for what it boots):

- QEMU starts paused (``-S``) as our own child in its own process group, already confined to
  the partition's CPUs (inherited by every thread it creates) and killed by the kernel if the
  coordinator dies (``PR_SET_PDEATHSIG``). It is never daemonized: a daemon is nobody's child
  and outlives Ctrl-C.
- Each guest NUMA node's memory backend is bound to its host node (``policy=bind``); the
  policies are read back from ``/proc/PID/numa_maps``. Where the kernel refuses ``mbind``
  (containers) the VM is started again without it and that is recorded.
- Through QMP (``query-cpus-fast``) vCPU k's thread is pinned to the plan's k-th CPU and read
  back, then the VM is resumed (``cont``): no guest instruction runs unpinned.
- The protocol travels over a virtio-serial port wired to QEMU's stdin/stdout; the serial
  console (kernel, init and the worker's stderr) goes to QEMU's stderr. The guest's
  ``ready`` report is checked against the host's ISA on its way to the coordinator, and the
  guest's CPU times (steal) are taken off the console.
- Acceleration (``--accel auto|kvm|tcg``, see ``accel.py``): without KVM, timings are
  marked ``emulated``.
- The guest sees only the host folders its worker needs, read-only (``guest.guest_root``,
  recorded per instance). A run's VM files live in ``$TMPDIR/scaler-vm-PID-*``, locked while
  its coordinator lives; the next run removes those of a coordinator that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from scaler.errors import UsageError
from scaler.hostfacts import host_facts, parse_cpu_line
from scaler.targets import STREAM_LIMIT, guest
from scaler.targets.accel import Accel, QemuFacts, detect_accel, probe_qemu, resolve_accel
from scaler.targets.base import Target, register
from scaler.targets.guestkernel import Kernel, find_kernel
from scaler.targets.guestroot import GuestRoot, guest_root
from scaler.targets.pvh import boot_image
from scaler.targets.qmp import Qmp, QmpError, listening_socket
from scaler.targets.relay import RelayedProcess
from scaler.targets.vmchecks import (
    MIN_MEMORY_MB,
    check_hugepages,
    check_node_memory,
    default_memory_mb,
    isa_verdict,
)
from scaler.targets.vmfiles import VmFiles, sweep_stale_dirs
from scaler.targets.vminstance import VmError, VmInstance
from scaler.targets.vmpin import confine, pin_vcpus, read_memory_policy
from scaler.targets.vmplan import Boot, VmOptions, VmPlan, vm_plan
from scaler.worker import protocol

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.worker.protocol import WorkerRequest
    from scaler.worker.spec import WorkerSpec

__all__ = ["Accel", "VmError", "VmTarget", "detect_accel", "isa_verdict", "resolve_accel"]

QEMU = "qemu-system-x86_64"
QMP_TIMEOUT_S = 60.0  # QEMU start-up until its monitor answers (2 busy cores: be generous)
# environment passed on to the guest's worker (the rest of the host's is not)
GUEST_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "SCALER_CACHE_DIR", "XDG_CACHE_HOME",
                  "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "PATH", "SCALER_PLUGINS",
                  "PYTHONPATH")  # plug-in engines load in the guest too (their folders shared)
# console lines that end every guest and say nothing about why it ended
_NOISE = re.compile(r"reboot: Power down|ACPI: PM: Preparing to enter|sysrq: Power Off"
                    r"|^SeaBIOS|^Booting from ROM|^Probing EDD")
_BIND_REFUSED = "cannot bind memory to host NUMA nodes"


@register
class VmTarget(Target):
    """Starts each worker in its own VM on the request's partition (see the module doc).

    Construction checks everything that can be checked without a guest (QEMU, KVM or the
    reason for TCG, the kernel, its modules, busybox), so a run fails before its first
    group rather than at its first VM.
    """

    name = "vm"

    def __init__(self, topology: Topology, kernel: str | None = None,
                 memory_mb: int | None = None, accel: Accel | str | None = None,
                 qemu: str = QEMU, python: str = sys.executable,
                 qmp_timeout_s: float = QMP_TIMEOUT_S, hugepages: bool = False) -> None:
        self.topology = topology
        found = shutil.which(qemu)
        if found is None:
            raise UsageError(f"{qemu} not found: the vm placement needs QEMU "
                             "(apt-get install qemu-system-x86)")
        self.qemu = found
        if not os.path.isabs(python):
            raise UsageError(f"the guest runs the worker by absolute path, not {python!r}")
        self.python = python
        self.accel = accel if isinstance(accel, Accel) else resolve_accel(accel or "auto",
                                                                          qemu=found)
        self.memory_mb = memory_mb or MIN_MEMORY_MB
        self.hugepages = hugepages
        self.dedicated = True  # until a group's partitions share a CPU
        self.qmp_timeout_s = qmp_timeout_s
        self.bind_memory = True
        self.bind_refusal = ""
        self.instances: dict[int, VmInstance] = {}
        self._tmp: VmFiles | None = None
        self._serial = 0
        self.kernel, self._base, self.qemu_facts = self.check(kernel)
        self.boot = boot_image(self.kernel.path)  # its ELF through PVH where it has one

    def check(self, kernel: str | None) -> tuple[Kernel, bytes, QemuFacts]:
        """The kernel, the shared initramfs (modules read and decompressed now) and what
        QEMU says of itself with this accelerator; UsageError naming what is wrong."""
        found = find_kernel(kernel)
        base = guest.check_kernel(found)
        return found, base, probe_qemu(self.qemu, self.accel.name)

    @property
    def emulated(self) -> bool:
        return self.accel.emulated

    def options(self) -> VmOptions:
        max_vcpus = self.qemu_facts.q35_max_cpus
        if not self.accel.emulated and self.accel.caps.get("max_vcpus"):
            max_vcpus = min(max_vcpus, self.accel.caps["max_vcpus"])
        return VmOptions(accel=self.accel.name, memory_mb=self.memory_mb,
                         dedicated=self.dedicated, cpu_pm=self.accel.cpu_pm,
                         hugepages=self.hugepages, bind_memory=self.bind_memory,
                         max_vcpus=max_vcpus)

    def vm_plan(self, partition: dict[str, Any], index: int) -> VmPlan:
        """The VM this target boots for a partition (the dry run shows the same)."""
        return vm_plan(self.topology, partition["cpus"], partition.get("nodes") or [], index,
                       self.options())

    def describe(self) -> dict[str, Any]:
        return {**self.accel.to_dict(), "kernel": self.kernel.path,
                "kernel_release": self.kernel.version, "boot": self.boot.to_dict(),
                "qemu": self.qemu,
                "qemu_facts": self.qemu_facts.to_dict(), "hugepages": self.hugepages,
                "dedicated_cpus": self.dedicated,
                "host_facts": host_facts(cpus=self.topology.usable_cpus)}

    def instance_info(self, index: int) -> dict[str, Any]:
        inst = self.instances.get(index)
        return {"vm": {**self.describe(), **inst.info()}} if inst else {}

    def check_spec(self, precision: str, engine: str) -> None:
        """Refuse before any VM boots a precision the guest CPU QEMU predicts cannot run
        as the host does (see :func:`isa_verdict`; the guest's own report is checked again
        when its worker is ready)."""
        from scaler.engines.registry import get

        _, _, refusal = isa_verdict(self.topology.isa, self.qemu_facts.guest_isa, precision,
                                    get(engine).infers, not self.accel.emulated)
        if refusal:
            raise UsageError(f"vm placement: {refusal} (QEMU {self.qemu_facts.version}, "
                             f"-cpu {self.qemu_facts.cpu_model}, {self.accel.name})")

    def plan_memory(self, partitions: Iterable[dict[str, Any] | None], memory_mb: int | None,
                    worker_gb: float) -> int:
        """Guest memory for the next group (``--vm-memory`` or enough for a worker of about
        ``worker_gb``); UsageError when the partitions' nodes cannot hold all the VMs or a
        partition's VM cannot be booted (vCPU and APIC id limits). Partitions sharing a CPU
        (oversubscription) make the vCPUs non-dedicated: no cpu-pm, no dedicated hint."""
        parts = [p or {} for p in partitions]
        self.memory_mb = memory_mb or default_memory_mb(worker_gb)
        cpu_lists = [list(p["cpus"]) for p in parts if p.get("cpus")]
        every = [cpu for cpus in cpu_lists for cpu in cpus]
        self.dedicated = len(every) == len(set(every))
        plans = [self.vm_plan(p, k) for k, p in enumerate(parts) if p.get("cpus")]
        if self.hugepages:
            check_hugepages(plans)
        else:
            check_node_memory(parts, self.memory_mb)
        return self.memory_mb

    @classmethod
    def sweep_stale(cls) -> list[str]:
        """The folders of VMs whose scaler process died (``vmfiles.sweep_stale_dirs``)."""
        return sweep_stale_dirs()

    def close(self) -> None:
        """Remove the VMs' files (initramfs images, sockets); the VMs are gone by then."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- start ---------------------------------------------------------------------------

    async def start(self, request: WorkerRequest) -> RelayedProcess:
        part = request.partition
        if not part or not part.get("cpus"):
            raise VmError("a VM needs a partition (its CPUs become the vCPUs)")
        if self._tmp is None:
            sweep_stale_dirs()
            self._tmp = VmFiles()
        self._serial += 1
        stem = os.path.join(self._tmp.path, f"vm{request.index}-{self._serial}")
        inst = VmInstance(request.index, part, self.vm_plan(part, request.index),
                          stem + ".qmp")
        self.instances[request.index] = inst
        cwd = os.getcwd()
        inst.guest_root = self.guest_root(request.spec, cwd)
        with open(stem + ".img", "wb") as f:
            f.write(self._base + guest.job_archive(self._guest_argv(request.spec.argv()),
                                                   f"scaler-vm{request.index}", cwd,
                                                   inst.guest_root))
        ready_check = self._ready_check(inst, request.spec)
        proc = await self._launch(inst, stem + ".img", ready_check)
        if proc.returncode is not None and self.bind_memory and any(
                _BIND_REFUSED in line for line in proc.tail):
            self.bind_memory = False  # containers refuse mbind: pin CPUs alone, and say so
            self.bind_refusal = next(line for line in proc.tail if _BIND_REFUSED in line)
            inst.failure = None
            inst.plan = self.vm_plan(part, request.index)
            proc = await self._launch(inst, stem + ".img", ready_check)
        with contextlib.suppress(OSError):
            os.unlink(stem + ".img")  # QEMU has read it by the time QMP answers
        return proc

    def guest_root(self, spec: WorkerSpec, cwd: str) -> GuestRoot:
        """What the guest of a worker sees (see ``guest.guest_root``): the Python
        environment, the project, the libraries, the model cache and a model path."""
        from scaler.engines.cache import cache_root

        plugin_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        return guest_root(self.python, [spec.model, str(cache_root(spec.cache_dir)),
                                              *plugin_paths], cwd)

    def _guest_argv(self, args: Iterable[str]) -> list[str]:
        env = [f"{k}={os.environ[k]}" for k in GUEST_ENV_KEYS if k in os.environ]
        env += ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", f"TMPDIR={guest.GUEST_TMPDIR}"]
        if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
            env.append("TF_CPP_MIN_LOG_LEVEL=2")
        return ["-i", *env, self.python, "-m", "scaler.worker", *args]

    def qemu_argv(self, inst: VmInstance, initrd: str, qmp_fd: int) -> list[str]:
        shares = inst.guest_root.shares if inst.guest_root else ()
        return inst.plan.argv(Boot(self.qemu, self.boot.path, initrd, qmp_fd, shares))

    def _ready_check(self, inst: VmInstance, spec: WorkerSpec) -> Callable[[bytes], bytes]:
        """Compare the guest worker's ISA with the host's when its first message comes;
        a request the guest cannot run as the host does becomes an ``error`` message."""
        from scaler.engines.registry import get

        precision, infers = spec.precision, get(spec.engine).infers

        def check(line: bytes) -> bytes:
            message = protocol.decode(line)
            if not message or message.get("type") != "ready":
                return line
            inst.guest_isa = list(message.get("isa") or [])
            inst.isa_missing, inst.warnings, refusal = isa_verdict(
                self.topology.isa, inst.guest_isa, precision, infers, not self.emulated)
            if refusal is None:
                return line
            inst.failure = refusal
            return protocol.encode({"type": "error", "kind": "guest ISA", "message": refusal})

        return check

    def _consume(self, inst: VmInstance) -> Callable[[str], bool]:
        """Take the guest's periodic CPU-time lines off its console (kept for steal)."""

        def consume(line: str) -> bool:
            if not line.startswith(guest.STAT_MARK):
                return False
            times = parse_cpu_line(line[len(guest.STAT_MARK):])
            if times is not None:
                inst.stat_first = inst.stat_first or times
                inst.stat_last = times
            return True

        return consume

    async def _launch(self, inst: VmInstance, initrd: str,
                      ready_check: Callable[[bytes], bytes]) -> RelayedProcess:
        """Start QEMU paused, pin it through QMP and resume it; on any failure before the
        worker could run, the returned process has exited and its last stderr line says why."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(inst.qmp_path)
        sock = listening_socket(inst.qmp_path)
        # QEMU's stderr is a pipe of our own, not the event loop's: the console chardev opens
        # /dev/stderr, which works for a pipe but not for the socketpair uvloop would make
        console_r, console_w = os.pipe()
        try:
            raw = await asyncio.create_subprocess_exec(
                *self.qemu_argv(inst, initrd, sock.fileno()), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=console_w,
                limit=STREAM_LIMIT, pass_fds=(sock.fileno(),), start_new_session=True,
                preexec_fn=confine(inst.plan.cpus))
        except BaseException as exc:
            os.close(console_r)
            if isinstance(exc, (OSError, subprocess.SubprocessError)):
                raise VmError(f"cannot start {self.qemu}: {exc}") from None
            raise
        finally:
            sock.close()  # QEMU holds its own copy of the listening socket
            os.close(console_w)
        console = await _read_pipe(console_r)
        proc = RelayedProcess(raw, summary=self._summary(inst), stderr=console,
                              first_message=ready_check, consume=self._consume(inst))
        inst.process, inst.qemu_pid = proc, raw.pid
        try:
            await self._pin_and_resume(inst, proc)
        except BaseException as exc:
            inst.failure = inst.failure or f"setting up the VM failed: {exc}"
            proc.kill()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(10):
                    await asyncio.shield(proc.wait())
            if not isinstance(exc, Exception):
                raise  # Ctrl-C: QEMU is gone, pass the cancellation on
        return proc

    async def _pin_and_resume(self, inst: VmInstance, proc: RelayedProcess) -> None:
        connect = asyncio.ensure_future(Qmp.connect(inst.qmp_path, self.qmp_timeout_s))
        exited = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({connect, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if not connect.done():
            connect.cancel()
            with contextlib.suppress(BaseException):
                await connect
        try:
            qmp = connect.result() if not connect.cancelled() else None
        except (TimeoutError, OSError, QmpError) as exc:
            with contextlib.suppress(asyncio.TimeoutError):  # did QEMU fail to start?
                async with asyncio.timeout(5):
                    await proc.wait()
            if proc.returncode is None:
                why = (f"no answer within {self.qmp_timeout_s:g} s" if isinstance(
                    exc, TimeoutError) else str(exc))
                raise VmError(f"QMP failed: {why}") from None
            qmp = None
        if qmp is None:
            inst.failure = f"QEMU failed to start (exit code {proc.returncode})"
            return
        try:
            await pin_vcpus(inst, qmp, proc.pid)
            read_memory_policy(inst, proc.pid, self.bind_memory, self.bind_refusal)
            await qmp.execute("cont")
        finally:
            qmp.close()

    def _summary(self, inst: VmInstance) -> Callable[[RelayedProcess, int | None], str | None]:
        """The line added to the VM's stderr when QEMU ends, unless the worker ended well."""

        def summary(proc: RelayedProcess, code: int | None) -> str | None:
            lines = [line for line in proc.tail if not _NOISE.search(line)]
            exits = [line for line in lines if line.startswith(guest.WORKER_EXITED)]
            if exits and exits[-1] == f"{guest.WORKER_EXITED} 0":
                return None
            errors = [line for line in lines if line.startswith(f"{guest.INIT_MARK} error")]
            ended = (f"QEMU was stopped (signal {-code})" if code is not None and code < 0
                     else f"the VM shut down (QEMU exit code {code})")
            reason = inst.failure or (errors or exits or [f"{ended} before its worker ended"])[-1]
            # the coordinator quotes about 200 characters: the last console lines go first
            last = " | ".join(line.strip().removeprefix("qemu-system-x86_64: ")
                              for line in lines[-3:]) or "no console output"
            return f"vm {inst.index}: {last} [{reason}]"

        return summary


async def _read_pipe(fd: int) -> asyncio.StreamReader:
    """A StreamReader over the read end of an os.pipe (closed at end of file)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
                                 os.fdopen(fd, "rb", 0))
    return reader
