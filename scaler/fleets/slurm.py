"""The ``slurm`` fleet provider: workers as job steps of one Slurm allocation.

``--fleet slurm[:PARTITION[:NODES]]`` asks Slurm for NODES whole nodes (default 1) of the
partition (default: the cluster's default one) with ``salloc --exclusive``, reads each
node's topology by running ``python -m scaler topology --json`` there as a one-task job
step, plans each node's instances on its own topology as the ``ssh`` fleet does, and starts
every worker as a step of that allocation (``scaler.fleets.slurmsteps``) bound by Slurm's own
``--cpu-bind``/``--mem-bind``: the worker does not pin itself.

Nothing outlives the command. ``salloc`` runs a watchdog in place of a shell: it prints the
grant and then reads its stdin, a pipe from this process, until end of file; when the run
ends, is interrupted, or this process dies (even by SIGKILL) the pipe closes, the watchdog
exits, salloc relinquishes the allocation and Slurm ends every step. ``close`` also runs
``scancel`` on the job. An allocation not granted within ``--ready-timeout`` is cancelled and
refused (exit 2), as are a partition Slurm does not know and a PATH without Slurm's commands.
The python that runs the steps is this one (``sys.executable``): the venv must be on a path
every node sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler.errors import ScalerError, UsageError
from scaler.fleets import register
from scaler.fleets.base import FleetChoice, FleetProvider
from scaler.placements.fleet import FleetPlacement
from scaler.targets import STREAM_LIMIT

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.placements.base import GroupPlan, Placement
    from scaler.settings import Settings
    from scaler.targets import Target

TOOLS = ("salloc", "srun", "sinfo", "squeue", "scancel", "scontrol")
PROBE_TIMEOUT_S = 120.0
GRANTED = "@scaler-granted"
# runs in place of salloc's shell: say what was granted, then live as long as our pipe
WATCHDOG = (f'echo "{GRANTED} $SLURM_JOB_ID $SLURM_JOB_NODELIST $SLURM_JOB_CPUS_PER_NODE"; '
            "exec cat >/dev/null")
_JOB_LINE = re.compile(r"(?:Pending|Granted) job allocation (\d+)")


class SlurmError(ScalerError):
    """A step or Slurm command failed mid-way (one line)."""


def parse_arg(choice: FleetChoice) -> tuple[str | None, int]:
    """``PARTITION[:NODES]`` of ``--fleet slurm:...``."""
    partition, _, nodes = (choice.arg or "").partition(":")
    if partition and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", partition):
        raise UsageError(f"--fleet {choice}: {partition!r} is not a partition name")
    if nodes and (not nodes.isdigit() or not 1 <= int(nodes) <= 4096):
        raise UsageError(f"--fleet {choice}: NODES must be a number from 1 to 4096")
    return partition or None, int(nodes or 1)


def run_tool(argv: list[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """A Slurm client command (sinfo, scancel, ...), its failure as SlurmError."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{argv[0]} failed: {exc}") from None


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def expand_counts(text: str) -> list[int]:
    """``SLURM_JOB_CPUS_PER_NODE`` (``2(x3),4``) as one count per node."""
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if m:
            out += [int(m[1])] * int(m[2] or 1)
    return out


class Allocation:
    """One salloc holding the fleet's nodes (see the module doc for its watchdog). salloc is a
    plain child (not an asyncio one) so that ``release`` can end and reap it from anywhere,
    also after the event loop is gone."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes]) -> None:
        self.argv = argv
        self.proc = proc
        self.job: str | None = None
        self.nodes: tuple[str, ...] = ()
        self.cpus: dict[str, int] = {}
        self.stderr: list[str] = []
        self.released = False
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    @classmethod
    async def request(cls, partition: str | None, nodes: int, timeout_s: float,
                      label: str) -> Allocation:
        argv = ["salloc", "-N", str(nodes), "--exclusive", "-J", f"scaler-{os.getpid()}",
                *(["-p", partition] if partition else []), "--", "sh", "-c", WATCHDOG]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise UsageError(f"{label}: cannot run salloc: {exc.strerror or exc}") from None
        alloc = cls(argv, proc)
        try:
            await alloc._granted(timeout_s, label)
        except BaseException:
            alloc.release()
            raise
        return alloc

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr.append(line)
            m = _JOB_LINE.search(line)
            if m and self.job is None:
                self.job = m[1]

    def _read_grant(self) -> str:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line or line.startswith(GRANTED):
                return line

    async def _granted(self, timeout_s: float, label: str) -> None:
        loop = asyncio.get_running_loop()
        reader = loop.run_in_executor(None, self._read_grant)  # ends when salloc does
        try:
            async with asyncio.timeout(timeout_s):
                line = await asyncio.shield(reader)
        except TimeoutError:
            reason = ""
            if self.job:
                reason = run_tool(["squeue", "-h", "-j", self.job, "-o", "%r"]).stdout.strip()
            raise UsageError(f"{label}: the allocation (job {self.job or '?'}) was not granted "
                             f"within --ready-timeout {timeout_s:g} s (pending: "
                             f"{reason or 'unknown'}); cancelled") from None
        if not line:
            self.proc.wait(timeout=10)
            self._drain.join(timeout=5)
            raise UsageError(f"{label}: salloc refused: {last_line(chr(10).join(self.stderr))}")
        _, job, nodelist, counts = (line.split() + ["", "", ""])[:4]
        self.job = job
        names = run_tool(["scontrol", "show", "hostnames", nodelist]).stdout.split()
        cpus = expand_counts(counts)
        if not names or len(cpus) != len(names):
            raise SlurmError(f"{label}: job {job}: cannot read the granted nodes "
                             f"({nodelist!r}, CPUs {counts!r})")
        self.nodes = tuple(names)
        self.cpus = dict(zip(names, cpus))

    def release(self) -> None:
        """End the allocation (and so every step): close the watchdog's pipe, scancel, and
        wait for salloc (a pending one cancels its request on SIGTERM)."""
        if self.released:
            return
        self.released = True
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.job:
            with contextlib.suppress(SlurmError):
                run_tool(["scancel", "--quiet", self.job], timeout_s=15)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def describe(self) -> dict[str, Any]:
        return {"job": self.job, "nodes": list(self.nodes), "cpus_per_node": self.cpus,
                "salloc": " ".join(self.argv[:self.argv.index("--")])}


@dataclass(frozen=True)
class SlurmNode:
    name: str
    cpus: int


async def probe(alloc: Allocation, node: str, python: str,
                timeout_s: float = PROBE_TIMEOUT_S) -> Topology:
    """The node's topology, read by ``scaler topology --json`` run as a one-task step."""
    from scaler.hosts import Host
    from scaler.targets.ssh import topology_from_dict

    argv = ["srun", "--jobid", str(alloc.job), "--overlap", "-N1", "-n1", "-w", node,
            "-c", str(alloc.cpus[node]), "--cpu-bind=none", "-J", "scaler-topology",
            "--", python, "-m", "scaler", "topology", "--json"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=STREAM_LIMIT, start_new_session=True)
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        raise SlurmError(f"node {node} (job {alloc.job}): the topology step did not answer "
                         f"within {timeout_s:g} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise SlurmError(f"node {node} (job {alloc.job}): the topology step failed (exit code "
                         f"{proc.returncode}): {last_line(err.decode(errors='replace'))}")
    try:
        return topology_from_dict(json.loads(out), Host(name=node, destination=node))
    except (ValueError, KeyError, TypeError) as exc:
        raise SlurmError(f"node {node}: `{python} -m scaler topology --json` printed no "
                         f"topology ({exc})") from None


class SlurmFleet:
    """The nodes of one allocation, each with its own topology."""

    def __init__(self, choice: FleetChoice, alloc: Allocation,
                 topologies: dict[str, Topology], python: str) -> None:
        self.choice, self.alloc, self.topologies, self.python = choice, alloc, topologies, python
        self.hosts = tuple(SlurmNode(n, alloc.cpus[n]) for n in alloc.nodes)
        self._target: Target | None = None

    def wrap(self, placement: Placement) -> Placement:
        return SlurmPlacement(placement, self)  # type: ignore[arg-type]

    def host_of(self, k: int) -> SlurmNode:
        return self.hosts[k % len(self.hosts)]  # instances are dealt to nodes in turn

    def target(self) -> Target:
        from scaler.fleets.slurmsteps import SlurmTarget

        if self._target is None:
            self._target = SlurmTarget(self.alloc, self.topologies, self.python)
        return self._target

    def describe(self) -> dict[str, Any]:
        return {"fleet": str(self.choice), "python": self.python, **self.alloc.describe(),
                "topologies": {n: t.to_dict() for n, t in self.topologies.items()}}

    def close(self) -> None:
        self.alloc.release()


class SlurmPlacement(FleetPlacement):
    """A placement on the allocation's nodes: planned per node like the ssh fleet, but the
    worker does not pin itself (Slurm binds the step): its spec gets no CPUs or nodes."""

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        import dataclasses

        planned = super().plan(topology, n, smt=smt, cores_per_instance=cores_per_instance)
        return dataclasses.replace(planned, instances=tuple(
            dataclasses.replace(i, worker_cpus=None, worker_nodes=None)
            for i in planned.instances))


class SlurmProvider(FleetProvider):
    name = "slurm"
    usage = "slurm[:PARTITION[:NODES]]"
    record_key = "slurm"

    def step_options(self, cpus: tuple[int, ...], nodes: tuple[int, ...]) -> list[str]:
        from scaler.fleets.slurmsteps import bind_options

        return bind_options(cpus, nodes)

    def check(self, choice: FleetChoice) -> None:
        partition, _ = parse_arg(choice)
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise UsageError(f"--fleet {choice}: no Slurm commands on PATH ({', '.join(missing)}"
                             " not found): run where Slurm's client tools are installed")
        try:
            done = run_tool(["sinfo", "-h", "-o", "%R"])
        except SlurmError as exc:
            raise UsageError(f"--fleet {choice}: {exc}") from None
        if done.returncode != 0:
            raise UsageError(f"--fleet {choice}: sinfo failed: {last_line(done.stderr)}")
        known = sorted(set(done.stdout.split()))
        if partition is not None and partition not in known:
            raise UsageError(f"--fleet {choice}: Slurm has no partition {partition!r} "
                             f"(partitions: {', '.join(known) or 'none'})")

    async def open(self, choice: FleetChoice, settings: Settings) -> SlurmFleet:
        partition, nodes = parse_arg(choice)
        label = f"--fleet {choice}"
        alloc = await Allocation.request(partition, nodes, settings.ready_timeout_s, label)
        python = sys.executable
        try:
            found = await asyncio.gather(*(probe(alloc, n, python) for n in alloc.nodes))
        except BaseException:
            alloc.release()
            raise
        return SlurmFleet(choice, alloc, dict(zip(alloc.nodes, found)), python)


register(SlurmProvider())
