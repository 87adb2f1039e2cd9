"""A two-socket testbed: the tool itself run inside a QEMU guest with 2 sockets, 2 NUMA
nodes, 2 cores per socket and 2 threads per core (8 vCPUs), memory on each node.

Multi-node code paths (memory bound to node 1, partitions planned per node, shared
instances spanning both nodes, the workers' ``numa_maps`` read-back) never run on a
one-node machine; here they run on a real kernel. The guest is the ``vm`` placement's
(``targets/guest.py``): the host's kernel, a tiny initramfs, and the host's Python
environment and project shared read-only over virtio-9p at their own paths; instead of a
worker, its init runs :mod:`scaler.testbed_guest`, which runs ``python -m scaler ...``
commands and sends back over the virtio-serial port what each printed and the run folders
it wrote. KVM where available, TCG (about 100x slower) otherwise: the guest's timings are
never figures, only its read-backs are.

``python -m scaler.testbed --out DIR`` (``make testbed``) runs the issue's command list
(:data:`FULL`); :func:`run` runs any list (the tests run a short one).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.errors import ScalerError, UsageError
from scaler.targets import guest, guestkernel, guestroot
from scaler.targets.pvh import boot_image
from scaler.targets.qmp import listening_socket
from scaler.targets.vmplan import Boot, GuestNode, VmOptions, VmPlan

SOCKETS, CORES, THREADS = 2, 2, 2  # per guest: 8 vCPUs, one NUMA node per socket
NODE_DISTANCES = ((10, 21), (21, 10))
DEFAULT_MEMORY_MB = 2048  # split evenly over the two nodes
BOOT_TIMEOUT_S = 3600.0
GUEST_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "SCALER_CACHE_DIR", "XDG_CACHE_HOME",
                  "TF_CPP_MIN_LOG_LEVEL", "PATH", "PYTHONPATH")
PR_SET_PDEATHSIG = 1

# the commands: topology, plan, then null and tflite scaling sweeps per placement
_SWEEP = ("--placement", "shared,pinned", "--repeat", "1", "--min-duration", "1",
          "--warmup", "0.5", "--ready-timeout", "900", "--no-lock", "--out", "{out}")
FULL: tuple[tuple[str, ...], ...] = (
    ("topology", "--json"),
    ("plan", "--instances", "2,4", "--json"),
    ("plan", "--instances", "1,2", "--cores-per-instance", "2", "--smt", "--json"),
    ("scaling", "--engine", "null", "--instances", "1,2,4", *_SWEEP),
    ("scaling", "--engine", "tflite", "--model", "tiny", "--instances", "1,2,4", *_SWEEP),
    ("scaling", "--engine", "null", "--instances", "1,2", "--cores-per-instance", "2",
     "--smt", *_SWEEP),
    ("scaling", "--engine", "tflite", "--model", "tiny", "--instances", "1,2",
     "--cores-per-instance", "2", "--smt", *_SWEEP),
)


class TestbedError(ScalerError):
    """The guest did not boot, or ended before it had run every command."""


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    rc: int | None
    seconds: float
    stdout: str
    stderr: str
    folder: Path  # where its output folder's files were written on the host

    def json(self) -> Any:
        return json.loads(self.stdout)

    def runs(self) -> list[dict[str, Any]]:
        """Every run.json the command wrote, in path order."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.rglob("run.json"))]


def testbed_plan(accel: str, memory_mb: int = DEFAULT_MEMORY_MB) -> VmPlan:
    """The guest: 2 sockets x 2 cores x 2 threads, socket k = NUMA node k with half the
    memory. Its vCPUs are not pinned (the host may have fewer CPUs) and its memory not
    bound: the nodes are the guest's, whatever the host has."""
    per_node = max(memory_mb // SOCKETS // 2 * 2, 2)  # whole 2 MiB units per node
    vcpus = SOCKETS * CORES * THREADS
    per_socket = CORES * THREADS
    nodes = tuple(GuestNode(k, 0, tuple(range(k * per_socket, (k + 1) * per_socket)),
                            per_node, NODE_DISTANCES[k]) for k in range(SOCKETS))
    options = VmOptions(accel=accel, memory_mb=per_node * SOCKETS, dedicated=False,
                        cpu_pm=False, bind_memory=False)
    return VmPlan(0, tuple(range(vcpus)), SOCKETS, CORES, THREADS, nodes, options, (0,),
                  ("testbed: vCPUs not pinned, guest memory not bound to host nodes",))


def guest_argv(python: str, commands: Sequence[Sequence[str]], timeout_s: float) -> list[str]:
    env = [f"{k}={os.environ[k]}" for k in GUEST_ENV_KEYS if k in os.environ]
    env += ["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", f"TMPDIR={guest.GUEST_TMPDIR}",
            "SCALER_LOCK_DIR=/run/scaler",
            # no speed probe: an emulated guest's speed is no figure, and numba would
            # compile it for minutes under TCG
            "SCALER_SPEED_PROBE=off",
            # no figures: matplotlib builds its font cache in every fresh guest (its home is
            # the initramfs) and draws under TCG for minutes; the run folders come back to the
            # host, where `scaler plot` draws them
            "SCALER_PLOTS=off"]
    return ["-i", *env, python, "-m", "scaler.testbed_guest",
            json.dumps([list(c) for c in commands]), str(timeout_s)]


def run(commands: Sequence[Sequence[str]], out: Path, *, accel: str = "auto",
        memory_mb: int = DEFAULT_MEMORY_MB, kernel: str | None = None,
        python: str = sys.executable, timeout_s: float = BOOT_TIMEOUT_S,
        command_timeout_s: float = BOOT_TIMEOUT_S) -> list[CommandResult]:
    """Boot the testbed guest, run ``commands`` (``scaler`` arguments; ``{out}`` = a fresh
    output folder) inside it one after another, and write what each sent back under
    ``out/K``; the guest's console goes to ``out/console.log``. TestbedError when the guest
    ends early or misses ``timeout_s``; the guest never outlives this call."""
    import shutil

    from scaler.engines.cache import cache_root
    from scaler.targets.accel import probe_qemu, resolve_accel

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise UsageError("qemu-system-x86_64 not found: the testbed needs QEMU "
                         "(apt-get install qemu-system-x86)")
    found = resolve_accel(accel, qemu=qemu)
    probe_qemu(qemu, found.name)  # QEMU runs at all with this accelerator
    kern = guestkernel.find_kernel(kernel)
    image = boot_image(kern.path)  # its ELF through PVH where it has one (targets/pvh.py)
    plan = testbed_plan(found.name, memory_mb)
    out.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    paths = [str(cache_root(None)), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    root = guestroot.guest_root(python, paths, cwd)
    with tempfile.TemporaryDirectory(prefix="scaler-testbed-") as tmp:
        initrd = os.path.join(tmp, "initrd.img")
        with open(initrd, "wb") as f:
            f.write(guest.check_kernel(kern) + guest.job_archive(
                guest_argv(python, commands, command_timeout_s), "scaler-testbed", cwd, root))
        sock = listening_socket(os.path.join(tmp, "qmp.sock"))
        argv = [a for a in plan.argv(Boot(qemu, image.path, initrd, sock.fileno(),
                                          root.shares)) if a != "-S"]
        (out / "qemu.json").write_text(json.dumps(
            {"argv": argv, "accel": found.to_dict(), "boot": image.to_dict(),
             "plan": plan.to_dict()}, indent=1))
        with open(out / "console.log", "wb") as console:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=console, pass_fds=(sock.fileno(),),
                                        start_new_session=True, preexec_fn=_die_with_us)
            finally:
                sock.close()
            results: list[CommandResult] = []
            try:  # each command's output is written as it arrives: a later failure keeps it
                lines = _read_lines(proc, time.monotonic() + timeout_s,
                                    lambda m: results.append(_save(m, out)))
            finally:
                _end(proc)
    if not any(m.get("type") == "done" for m in lines):
        tail = (out / "console.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise TestbedError(f"the testbed guest ended after {len(results)} of {len(commands)} "
                           f"commands; its console ends: {' | '.join(tail)}")
    return results


def _save(message: dict[str, Any], out: Path) -> CommandResult:
    """Write one command's files under ``out/K`` and its output to ``out/K.json``."""
    folder = out / str(message["index"])
    for rel, data in message["files"].items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
    res = CommandResult(message["argv"], message["rc"], message["seconds"], message["stdout"],
                        message["stderr"], folder)
    (out / f"{message['index']}.json").write_text(json.dumps(
        {k: message[k] for k in ("argv", "rc", "seconds", "stdout", "stderr")}, indent=1))
    return res


def _die_with_us() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _read_lines(proc: subprocess.Popen[bytes], deadline: float,
                on_command: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """JSON lines from the guest's port until it closes or ``deadline``; each command's
    result goes to ``on_command`` as it arrives (its files are not kept in the list)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    out: list[dict[str, Any]] = []
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestbedError("the testbed guest missed its deadline")
            if not sel.select(min(left, 5.0)):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            buf += chunk
            *whole, buf = buf.split(b"\n")
            for line in whole:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict) and message.get("type") == "command":
                        on_command(message)
                        message = {"type": "command", "index": message.get("index")}
                    if isinstance(message, dict):
                        out.append(message)
            if any(m.get("type") == "done" for m in out):
                with contextlib.suppress(OSError):
                    assert proc.stdin is not None
                    proc.stdin.write(b"read\n")
                    proc.stdin.flush()
                break
    return out


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Let the guest power off by itself for a while, then kill QEMU."""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def warm_model_cache(engine: str = "tflite", model: str = "tiny") -> None:
    """Build the model the guest loads on the host first: the guest's cache is read-only."""
    from scaler.engines import EngineSpec, load_engine

    load_engine(EngineSpec(engine=engine, precision="fp32", model=model, batch=1,
                           threads=1)).close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaler.testbed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/testbed", help="folder for what the guest sends")
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    p.add_argument("--kernel", default=None)
    args = p.parse_args(argv)
    try:
        warm_model_cache()
        results = run(FULL, Path(args.out), accel=args.accel, memory_mb=args.memory_mb,
                      kernel=args.kernel)
    except ScalerError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return exc.exit_code
    from scaler.testbed_report import report_lines

    failed = 0
    for res in results:
        print(f"$ scaler {' '.join(res.argv)}  -> exit {res.rc} in {res.seconds:g} s")
        if res.rc != 0:
            failed += 1
            print(res.stderr.strip()[-2000:])
    for line in report_lines(results):
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
