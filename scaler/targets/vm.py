"""The ``vm`` target: one QEMU VM per instance, its vCPUs pinned 1:1 to the partition's CPUs.

How a VM is made (see ``guest.py`` for what it boots):

- QEMU starts paused (``-S``) as our own child in its own process group, already confined to
  the partition's CPUs (inherited by every thread it creates) and killed by the kernel if the
  coordinator dies (``PR_SET_PDEATHSIG``). It is never daemonized: a daemon is nobody's child
  and outlives Ctrl-C.
- Guest RAM is a ``memory-backend-ram`` with ``host-nodes`` = the partition's NUMA nodes and
  ``policy=bind``; the policy is read back from ``/proc/PID/numa_maps``. Where the kernel
  refuses ``mbind`` (containers) the VM is started again without it and that is recorded.
- Through QMP (``query-cpus-fast``) each vCPU thread is pinned to one CPU of the partition
  and read back, then the VM is resumed (``cont``): no guest instruction runs unpinned.
- The protocol travels over a virtio-serial port wired to QEMU's stdin/stdout; the serial
  console (kernel, init and the worker's stderr) goes to QEMU's stderr.
- Acceleration is KVM when the CPU has ``vmx``/``svm`` and ``/dev/kvm`` answers, else TCG
  (multi-threaded): timings are then marked ``emulated``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist
from scaler.errors import ScalerError, UsageError
from scaler.targets import STREAM_LIMIT, guest
from scaler.targets.qmp import Qmp, QmpError, listening_socket
from scaler.targets.relay import RelayedProcess

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.worker.protocol import WorkerRequest

QEMU = "qemu-system-x86_64"
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
PR_SET_PDEATHSIG = 1
GUEST_OVERHEAD_MB = 384  # guest kernel, page cache of the shared root, tmpfs
MIN_MEMORY_MB = 512
QMP_TIMEOUT_S = 60.0  # QEMU start-up until its monitor answers (2 busy cores: be generous)
# environment passed on to the guest's worker (the rest of the host's is not)
GUEST_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "SCALER_CACHE_DIR", "XDG_CACHE_HOME",
                  "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "PATH")
# console lines that end every guest and say nothing about why it ended
_NOISE = re.compile(r"reboot: Power down|ACPI: PM: Preparing to enter|sysrq: Power Off"
                    r"|^SeaBIOS|^Booting from ROM|^Probing EDD")
_BIND_REFUSED = "cannot bind memory to host NUMA nodes"


class VmError(ScalerError):
    """A VM could not be set up as asked (pinning refused, QMP broken)."""


@dataclass(frozen=True)
class Accel:
    name: str  # kvm or tcg
    reason: str

    @property
    def emulated(self) -> bool:
        return self.name != "kvm"


def detect_accel(cpuinfo: str = "/proc/cpuinfo", device: str = "/dev/kvm") -> Accel:
    """KVM when the CPU advertises ``vmx``/``svm`` and ``/dev/kvm`` answers; else TCG.

    The CPU flag matters: some cloud VMs expose a ``/dev/kvm`` that cannot run a stock
    guest kernel (no nested virtualization), and a VM started there would fail or hang.
    """
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "vmx" not in flags and "svm" not in flags:
        return Accel("tcg", "the CPU has no vmx/svm flag")
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return Accel("tcg", f"{device}: {exc.strerror}")
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return Accel("tcg", f"{device} does not answer: {exc.strerror}")
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return Accel("tcg", f"{device} speaks KVM API {version}, not {KVM_API_VERSION}")
    return Accel("kvm", "vmx/svm present and /dev/kvm answers")


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


@dataclass
class VmInstance:
    """One VM as started: what was asked, what was verified, and its console."""

    index: int
    partition: dict[str, Any]
    memory_mb: int
    qmp_path: str
    process: RelayedProcess | None = None
    qemu_pid: int | None = None
    vcpus: list[dict[str, Any]] = field(default_factory=list)
    qemu_threads: int = 0
    threads_on_partition: bool | None = None
    memory_policy: str = ""
    memory_bound: bool = False
    memory_reason: str = ""
    failure: str | None = None

    def info(self) -> dict[str, Any]:
        proc = self.process
        ready = proc.first_message_at if proc else None
        return {
            "qemu_pid": self.qemu_pid, "memory_mb": self.memory_mb,
            "memory_policy": self.memory_policy, "memory_bound": self.memory_bound,
            "memory_reason": self.memory_reason, "vcpus": self.vcpus,
            "qemu_threads": self.qemu_threads,
            "qemu_threads_on_partition": self.threads_on_partition,
            "boot_to_ready_s": round(ready - proc.started, 3) if proc and ready else None,
            "failure": self.failure,
        }


class VmTarget:
    """Starts each worker in its own VM on the request's partition (see the module doc)."""

    name = "vm"

    def __init__(self, topology: Topology, kernel: str | None = None,
                 memory_mb: int | None = None, accel: Accel | None = None,
                 qemu: str = QEMU, python: str = sys.executable,
                 qmp_timeout_s: float = QMP_TIMEOUT_S) -> None:
        self.topology = topology
        self.kernel = guest.find_kernel(kernel)
        found = shutil.which(qemu)
        if found is None:
            raise UsageError(f"{qemu} not found: the vm placement needs QEMU "
                             "(apt-get install qemu-system-x86)")
        self.qemu = found
        if not os.path.isabs(python):
            raise UsageError(f"the guest runs the worker by absolute path, not {python!r}")
        self.python = python
        self.accel = accel or detect_accel()
        self.memory_mb = memory_mb or MIN_MEMORY_MB
        self.qmp_timeout_s = qmp_timeout_s
        self.bind_memory = True
        self.bind_refusal = ""
        self.instances: dict[int, VmInstance] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._base: bytes | None = None
        self._serial = 0

    @property
    def emulated(self) -> bool:
        return self.accel.emulated

    def describe(self) -> dict[str, Any]:
        return {"accel": self.accel.name, "accel_reason": self.accel.reason,
                "kernel": self.kernel.path, "kernel_release": self.kernel.version,
                "qemu": self.qemu}

    def instance_info(self, index: int) -> dict[str, Any]:
        inst = self.instances.get(index)
        return {"vm": {**self.describe(), **inst.info()}} if inst else {}

    def plan_memory(self, partitions: Iterable[dict[str, Any] | None], memory_mb: int | None,
                    worker_gb: float) -> int:
        """Guest memory for the next group (``--vm-memory`` or enough for a worker of about
        ``worker_gb``); UsageError when the partitions' nodes cannot hold all the VMs."""
        self.memory_mb = memory_mb or default_memory_mb(worker_gb)
        check_node_memory([p or {} for p in partitions], self.memory_mb)
        return self.memory_mb

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
            self._tmp = tempfile.TemporaryDirectory(prefix="scaler-vm-")
            self._base = guest.base_initramfs(self.kernel)
        self._serial += 1
        stem = os.path.join(self._tmp.name, f"vm{request.index}-{self._serial}")
        inst = VmInstance(request.index, part, self.memory_mb, stem + ".qmp")
        self.instances[request.index] = inst
        with open(stem + ".img", "wb") as f:
            assert self._base is not None
            f.write(self._base + guest.job_archive(self._guest_argv(request.spec.argv()),
                                                   f"scaler-vm{request.index}", os.getcwd()))
        proc = await self._launch(inst, stem + ".img")
        if proc.returncode is not None and self.bind_memory and any(
                _BIND_REFUSED in line for line in proc.tail):
            self.bind_memory = False  # containers refuse mbind: pin CPUs alone, and say so
            self.bind_refusal = next(line for line in proc.tail if _BIND_REFUSED in line)
            inst.failure = None
            proc = await self._launch(inst, stem + ".img")
        with contextlib.suppress(OSError):
            os.unlink(stem + ".img")  # QEMU has read it by the time QMP answers
        return proc

    def _guest_argv(self, args: Iterable[str]) -> list[str]:
        env = [f"{k}={os.environ[k]}" for k in GUEST_ENV_KEYS if k in os.environ]
        env += ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", f"TMPDIR={guest.GUEST_TMPDIR}"]
        if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
            env.append("TF_CPP_MIN_LOG_LEVEL=2")
        return ["-i", *env, self.python, "-m", "scaler.worker", *args]

    def qemu_argv(self, inst: VmInstance, initrd: str, qmp_fd: int) -> list[str]:
        cpus = inst.partition["cpus"]
        nodes = inst.partition.get("nodes") or []
        mb = inst.memory_mb
        backend = f"memory-backend-ram,id=ram,size={mb}M"
        if self.bind_memory and nodes:
            backend += f",host-nodes={format_cpulist(nodes).replace(',', ',host-nodes=')}"
            backend += ",policy=bind"
        kvm = self.accel.name == "kvm"
        return [
            self.qemu, "-name", f"scaler-vm{inst.index},debug-threads=on", "-S",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-machine", "q35,memory-backend=ram",
            "-accel", "kvm" if kvm else "tcg,thread=multi", "-cpu", "host" if kvm else "max",
            "-smp", self._smp(cpus), "-m", f"{mb}M", "-object", backend,
            "-kernel", self.kernel.path, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 loglevel=4 quiet",
            "-fsdev", f"local,id={guest.MOUNT_TAG},path=/,security_model=none,readonly=on,"
                      "multidevs=remap",
            "-device", f"virtio-9p-pci,fsdev={guest.MOUNT_TAG},mount_tag={guest.MOUNT_TAG}",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", "stdio,id=proto,signal=off",
            "-device", f"virtserialport,bus=vser.0,chardev=proto,name={guest.PORT_NAME}",
            "-chardev", "file,id=console,path=/dev/stderr", "-serial", "chardev:console",
            "-chardev", f"socket,id=qmp,fd={qmp_fd},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
        ]

    def _smp(self, cpus: list[int]) -> str:
        """vCPUs as sockets=1, cores x threads mirroring the partition's physical cores."""
        per_core: dict[tuple[int, int, int], int] = {}
        for core in self.topology.cores:
            hits = len(set(core.cpus) & set(cpus))
            if hits:
                per_core[core.key] = hits
        counts = set(per_core.values())
        if len(counts) == 1 and sum(per_core.values()) == len(cpus):
            threads = counts.pop()
            return f"cpus={len(cpus)},sockets=1,cores={len(per_core)},threads={threads}"
        return f"cpus={len(cpus)},sockets=1,cores={len(cpus)},threads=1"

    async def _launch(self, inst: VmInstance, initrd: str) -> RelayedProcess:
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
                preexec_fn=_confine(inst.partition["cpus"]))
        except BaseException as exc:
            os.close(console_r)
            if isinstance(exc, (OSError, subprocess.SubprocessError)):
                raise VmError(f"cannot start {self.qemu}: {exc}") from None
            raise
        finally:
            sock.close()  # QEMU holds its own copy of the listening socket
            os.close(console_w)
        console = await _read_pipe(console_r)
        proc = RelayedProcess(raw, summary=self._summary(inst), stderr=console)
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
            await self._pin(inst, qmp, proc.pid)
            self._read_memory_policy(inst, proc.pid)
            await qmp.execute("cont")
        finally:
            qmp.close()

    async def _pin(self, inst: VmInstance, qmp: Qmp, pid: int) -> None:
        """vCPU k on the partition's k-th CPU; every other QEMU thread on the partition."""
        cpus = list(inst.partition["cpus"])
        vcpus = sorted(await qmp.execute("query-cpus-fast"), key=lambda c: c["cpu-index"])
        if len(vcpus) != len(cpus):
            raise VmError(f"QEMU reports {len(vcpus)} vCPUs, expected {len(cpus)}")
        if len({c["thread-id"] for c in vcpus}) != len(vcpus):
            raise VmError("vCPUs share a host thread (single-threaded TCG?): cannot pin 1:1")
        inst.vcpus = []
        vcpu_threads = set()
        for vcpu, cpu in zip(vcpus, cpus):
            tid = int(vcpu["thread-id"])
            try:
                os.sched_setaffinity(tid, {cpu})
                got = sorted(os.sched_getaffinity(tid))
            except OSError as exc:
                raise VmError(f"cannot pin vCPU {vcpu['cpu-index']} (thread {tid}) to CPU "
                              f"{cpu}: {exc.strerror}") from None
            if got != [cpu]:
                raise VmError(f"vCPU {vcpu['cpu-index']} thread {tid} is allowed on "
                              f"{format_cpulist(got)} after pinning to {cpu}")
            vcpu_threads.add(tid)
            inst.vcpus.append({"vcpu": vcpu["cpu-index"], "thread_id": tid, "cpu": cpu})
        allowed = set(cpus)
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        on_partition = True
        for tid in tids:
            if tid in vcpu_threads:
                continue
            with contextlib.suppress(OSError):  # a thread may end meanwhile
                if not os.sched_getaffinity(tid) <= allowed:
                    os.sched_setaffinity(tid, allowed)
                on_partition &= os.sched_getaffinity(tid) <= allowed
        inst.qemu_threads, inst.threads_on_partition = len(tids), on_partition

    def _read_memory_policy(self, inst: VmInstance, pid: int) -> None:
        nodes = inst.partition.get("nodes") or []
        if not self.bind_memory:
            inst.memory_reason = f"mbind refused, VM memory not bound: {self.bind_refusal}"
        elif not nodes:
            inst.memory_reason = "no nodes in the partition"
        policies = set()
        with contextlib.suppress(OSError), open(f"/proc/{pid}/numa_maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and parts[1].startswith("bind:"):
                    policies.add(parts[1])
        inst.memory_policy = ",".join(sorted(policies)) or "default"
        wanted = f"bind:{format_cpulist(nodes)}"
        inst.memory_bound = self.bind_memory and bool(nodes) and policies == {wanted}
        if self.bind_memory and nodes:
            inst.memory_reason = "bound" if inst.memory_bound else (
                f"asked for {wanted}, QEMU's numa_maps show {inst.memory_policy}")

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


def _confine(cpus: Iterable[int]) -> Callable[[], None]:
    """Run in the forked child before exec: CPU affinity and death with the coordinator."""
    allowed = set(cpus)
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        os.sched_setaffinity(0, allowed)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec
