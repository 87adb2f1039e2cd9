"""Workers as job steps of the ``slurm`` fleet's allocation, bound by Slurm and read back.

Each worker is ``srun --jobid J --overlap -N1 -n1 -w NODE -c CPUS_OF_NODE
--cpu-bind=verbose,mask_cpu:M [--mem-bind=verbose,mask_mem:N] -- python -m scaler.worker``:
the step may use the whole node's CPUs (steps of one exclusive allocation overlap, and a
one-core step could not be bound to another core: "Unable to satisfy cpu bind request"),
and Slurm's task plug-in binds the task to the partition's CPUs (``mask_cpu``) and memory
nodes (``mask_mem``). The worker's spec names no CPUs: it keeps the affinity Slurm gave it
and reports it in ``ready``.

Read back, per instance: the job and step ids (the step's own ``SLURM_JOB_ID`` and
``SLURM_STEP_ID``, reported by the worker), the binding Slurm applied (``--cpu-bind=verbose``
prints ``cpu-bind=MASK - NODE, task 0 0 [PID]: mask 0x2 set`` on the step's stderr; taken
off the diagnostics and kept), and the worker's own affinity. A step bound elsewhere than
planned is refused when its ``ready`` arrives, with both CPU lists. The protocol runs over
the step's stdin/stdout (``srun --unbuffered``) exactly as over SSH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist
from scaler.fleets.slurm import Allocation, SlurmError, last_line
from scaler.targets import STREAM_LIMIT
from scaler.targets.base import Target, register
from scaler.targets.relay import RelayedProcess
from scaler.worker import protocol

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.worker.protocol import WorkerRequest

STEP_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
_BIND_LINE = re.compile(r"^(cpu|mem)-bind=(\S+)\s+-\s+(\S+),\s+task\s+(\d+)\s+(\d+)\s+"
                        r"\[(\d+)\]:\s+mask\s+(0x[0-9a-fA-F]+)\s+set")


def mask(ids: Sequence[int]) -> str:
    """CPU or node numbers as the hexadecimal mask Slurm's ``mask_cpu``/``mask_mem`` take."""
    return hex(sum(1 << i for i in set(ids)))


def unmask(text: str) -> list[int]:
    value = int(text, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def bind_options(cpus: Sequence[int], nodes: Sequence[int]) -> list[str]:
    """Slurm's own binding options for a partition (memory: only when it names nodes)."""
    out = [f"--cpu-bind=verbose,mask_cpu:{mask(cpus)}"]
    if nodes:
        out.append(f"--mem-bind=verbose,mask_mem:{mask(nodes)}")
    return out


def step_argv(job: str, node: str, node_cpus: int, cpus: Sequence[int], nodes: Sequence[int],
              command: Sequence[str], name: str) -> list[str]:
    return ["srun", "--jobid", job, "--overlap", "-N1", "-n1", "-w", node, "-c", str(node_cpus),
            "--unbuffered", "--kill-on-bad-exit=1", "-J", name, *bind_options(cpus, nodes),
            "--", *command]


def parse_bind_line(line: str) -> dict[str, Any] | None:
    """``cpu-bind=MASK - vm, task  0  0 [123]: mask 0x2 set`` as what it says, else None."""
    m = _BIND_LINE.match(line.strip())
    if not m:
        return None
    return {"kind": m[1], "style": m[2], "node": m[3], "task": int(m[4]), "pid": int(m[6]),
            "mask": m[7], "ids": unmask(m[7])}


def mismatch(planned: Sequence[int], slurm: Sequence[int] | None,
             worker: Sequence[int] | None) -> str | None:
    """Why the step does not run where it was planned (None: it does)."""
    want = sorted(planned)
    if slurm is not None and sorted(slurm) != want:
        return (f"Slurm bound the step to CPUs {format_cpulist(slurm)} but the plan asked for "
                f"CPUs {format_cpulist(want)}")
    if worker is not None and sorted(worker) != want:
        return (f"the worker reads back CPUs {format_cpulist(worker)} but the plan asked for "
                f"CPUs {format_cpulist(want)}")
    return None


class StepProcess(RelayedProcess):
    """The srun of one step; killing it also cancels the step itself."""

    step: str | None = None

    def kill(self) -> None:
        super().kill()
        if self.step:
            with contextlib.suppress(OSError):
                subprocess.Popen(["scancel", "--quiet", self.step], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)


@register
class SlurmTarget(Target):
    """Starts each request as a step on its node (``request.host``)."""

    name = "slurm"
    emulated = False

    def __init__(self, alloc: Allocation, topologies: dict[str, Topology], python: str) -> None:
        self.alloc, self.topologies, self.python = alloc, topologies, python
        self.steps: dict[int, dict[str, Any]] = {}

    async def start(self, request: WorkerRequest) -> RelayedProcess:
        node = request.host
        if node not in self.topologies:
            raise SlurmError(f"instance {request.index}: no node {node!r} in the allocation")
        part = request.partition
        cpus = list(part["cpus"]) if part else list(self.topologies[node].usable_cpus)
        nodes = list(part.get("nodes") or ()) if part else []
        assert self.alloc.job is not None
        argv = step_argv(self.alloc.job, node, self.alloc.cpus[node], cpus, nodes,
                         [self.python, "-m", "scaler.worker", *request.spec.argv()],
                         f"scaler-worker{request.index}")
        info: dict[str, Any] = {
            "job": self.alloc.job, "step": None, "node": node,
            "options": bind_options(cpus, nodes), "planned_cpus": format_cpulist(cpus),
            "planned_nodes": format_cpulist(nodes) or None, "slurm_cpu_bind": None,
            "slurm_mem_bind": None, "worker_cpus": None, "worker_memory_policy": None}
        self.steps[request.index] = info
        try:
            raw = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=STREAM_LIMIT, start_new_session=True,
                env={**os.environ, **STEP_ENV})
        except OSError as exc:
            raise SlurmError(f"cannot run srun: {exc.strerror or exc}") from None
        proc = StepProcess(raw, label=f"[{node} job {self.alloc.job}] ",
                           summary=self._summary(info), consume=self._consume(info))
        proc.first_message = self._check(info, cpus, proc)
        return proc

    def _consume(self, info: dict[str, Any]) -> Callable[[str], bool]:
        def consume(line: str) -> bool:
            bound = parse_bind_line(line)
            if bound is None:
                return False
            info[f"slurm_{bound['kind']}_bind"] = {
                "line": line.strip(), "style": bound["style"], "mask": bound["mask"],
                "list": format_cpulist(bound["ids"])}
            return True

        return consume

    def _check(self, info: dict[str, Any], planned: list[int],
               proc: StepProcess) -> Callable[[bytes], bytes]:
        def check(line: bytes) -> bytes:
            message = protocol.decode(line)
            if not message or message.get("type") != "ready":
                return line
            env = message.get("slurm") or {}
            if env.get("SLURM_STEP_ID") is not None:
                info["step"] = f"{env.get('SLURM_JOB_ID', info['job'])}.{env['SLURM_STEP_ID']}"
                proc.step = info["step"]
            info["slurm_env"] = env
            binding = message.get("binding") or {}
            worker = binding.get("cpus")
            info["worker_cpus"] = format_cpulist(worker) if worker is not None else None
            info["worker_memory_policy"] = binding.get("memory_policy")
            bound = info.get("slurm_cpu_bind")
            slurm = None
            if bound:
                slurm = unmask(bound["mask"])
            elif env.get("SLURM_CPU_BIND_LIST"):  # the verbose line not (yet) seen
                slurm = unmask(env["SLURM_CPU_BIND_LIST"].split(",")[0])
                info["slurm_cpu_bind"] = {"from": "SLURM_CPU_BIND_LIST",
                                          "list": format_cpulist(slurm)}
            refusal = mismatch(planned, slurm, worker)
            if refusal is None:
                return line
            info["refused"] = refusal
            return protocol.encode({"type": "error", "kind": "slurm binding",
                                    "message": f"step {info['step'] or info['job']} on "
                                               f"{info['node']}: {refusal}"})

        return check

    def _summary(self, info: dict[str, Any]) -> Callable[[RelayedProcess, int | None],
                                                          str | None]:
        def summary(proc: RelayedProcess, code: int | None) -> str | None:
            if code in (0, None) or code < 0:
                return None
            return (f"slurm step {info['step'] or '?'} (job {info['job']}) on {info['node']}: "
                    f"exit code {code}: {last_line(chr(10).join(proc.tail))}")

        return summary

    def instance_info(self, index: int) -> dict[str, Any]:
        info = self.steps.get(index)
        if info is None:
            return {}
        from scaler.targets.ssh import topology_brief

        topo = self.topologies.get(info["node"])
        host: dict[str, Any] = {"name": info["node"]}
        if topo is not None:
            host["topology"] = topology_brief(topo)
        return {"host": host, "slurm": dict(info)}

    def describe(self) -> dict[str, Any]:
        return {"job": self.alloc.job, "steps": {str(k): v for k, v in self.steps.items()}}
