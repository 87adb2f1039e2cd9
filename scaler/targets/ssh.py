"""The ``ssh`` target: workers on other machines (or existing VMs), reached with OpenSSH.

The system ``ssh`` client is used as it is (the user's keys, agent and ``~/.ssh/config``),
always with ``BatchMode=yes`` (never a prompt: a refused key is an error, not a hang) and
``StrictHostKeyChecking=yes`` (an unknown or changed host key is refused); both come first on
the command line, and ssh keeps the first value it is given for an option, so neither a hosts
file nor a config file can weaken them. The hosts file's own options (an allowlist, see
``scaler.hosts``) come next, then this module's keep-alive defaults, so a host's timeouts win
over the defaults. ssh gets an argv; the one string that must travel, the remote command, is
built with ``shlex`` quoting, and the destination comes after ``--``. The worker protocol
runs over the session's stdin/stdout exactly as for a local child; the worker dies when the
session ends (stdin EOF, and its parent death signal when sshd's session process goes).

Before a run each host is probed once (``python -m scaler topology --json``): that proves
reachability, the key and the installation, and gives the host's own topology, which the
partitions of its instances are planned from. A failure is one line naming the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from affinity import Core, Cpu, Node, Topology
from affinity.cpulist import format_cpulist
from scaler.clip import clip
from scaler.errors import ScalerError
from scaler.hosts import Host
from scaler.targets import STREAM_LIMIT, Target
from scaler.targets.base import register
from scaler.targets.relay import RelayedProcess

if TYPE_CHECKING:
    from scaler.worker.protocol import WorkerRequest

SSH = "ssh"
DEFAULT_PARALLEL = 32  # ssh processes connecting at once (--ssh-parallel)
PROBE_TIMEOUT_S = 60.0
ENFORCED = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes")
KEEPALIVE = ("-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15",
             "-o", "ServerAliveCountMax=4")
REMOTE_ENV = ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "TF_CPP_MIN_LOG_LEVEL=2")


class HostError(ScalerError):
    """A host cannot run workers: unreachable, key refused, scaler missing."""


def remote_command(host: Host, argv: Sequence[str]) -> str:
    """The command line the remote shell runs: every piece quoted, nothing interpolated."""
    command = "exec " + shlex.join(["env", *REMOTE_ENV, host.python, *argv])
    if host.workdir:
        command = f"cd {shlex.quote(host.workdir)} && {command}"
    return command


def ssh_argv(host: Host, argv: Sequence[str], ssh: str = SSH) -> list[str]:
    """The local ssh invocation for ``argv`` on ``host`` (no local shell involved)."""
    out = [ssh, *ENFORCED]
    for option in host.ssh_options:  # before the defaults: ssh keeps an option's first value
        out += ["-o", option]
    out += [*KEEPALIVE, "-T", "-e", "none"]
    if host.port is not None:
        out += ["-p", str(host.port)]
    if host.identity_file is not None:
        out += ["-i", host.identity_file, "-o", "IdentitiesOnly=yes"]
    return [*out, "--", host.destination, remote_command(host, argv)]


def explain_failure(host: Host, code: int | None, stderr: str) -> str:
    """One line naming the host and saying what went wrong, from ssh's exit code and stderr."""
    lines = [line.strip() for line in stderr[-(1 << 16):].splitlines() if line.strip()]
    last = clip(lines[-1], 120) if lines else "no message"
    if code == 255:
        reason = f"ssh failed: {last}"
        if "Host key verification failed" in stderr:
            reason += " (add the host's key to known_hosts; scaler never accepts unknown keys)"
    elif "No module named scaler" in stderr:
        reason = f"scaler is not installed for {host.python} (No module named scaler)"
    elif code == 127:
        reason = f"{host.python} not found ({last})"
    else:
        reason = f"exit code {code}: {last}"
    return f"host {host.name} ({clip(host.destination, 60)}): {reason}"


async def probe(host: Host, timeout_s: float = PROBE_TIMEOUT_S, ssh: str = SSH,
                limit: asyncio.Semaphore | None = None) -> Topology:
    """The host's topology as its own scaler reads it; HostError naming the host otherwise.
    ``limit``: a slot is held while the ssh process lives."""
    async with limit or contextlib.nullcontext():
        return await _probe(host, timeout_s, ssh)


async def _probe(host: Host, timeout_s: float, ssh: str) -> Topology:
    proc = await _spawn(host, ssh_argv(host, ["-m", "scaler", "topology", "--json"], ssh),
                        stdin=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        raise HostError(f"host {host.name} ({host.destination}): no answer within "
                        f"{timeout_s:g} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(5):
                    await proc.wait()
    if proc.returncode != 0:
        raise HostError(explain_failure(host, proc.returncode, err.decode(errors="replace")))
    try:
        topo = topology_from_dict(json.loads(out), host)
    except (ValueError, KeyError, TypeError) as exc:
        raise HostError(clip(f"host {host.name} ({host.destination}): `python -m scaler "
                             f"topology --json` printed no topology ({exc})")) from None
    return topo


async def probe_all(hosts: Sequence[Host], timeout_s: float = PROBE_TIMEOUT_S,
                    ssh: str = SSH, parallel: int = DEFAULT_PARALLEL) -> dict[str, Topology]:
    """Probe every host, at most ``parallel`` ssh processes at once. Once a host fails no
    new probe starts (a fleet with a dead host cannot run); the first failure in file order
    is raised, saying how many others failed or were not probed."""
    limit = asyncio.Semaphore(parallel)
    failed = asyncio.Event()

    async def one(host: Host) -> Topology | None:
        async with limit:
            if failed.is_set():
                return None
            try:
                return await _probe(host, timeout_s, ssh)
            except HostError:
                failed.set()
                raise

    results = await asyncio.gather(*(one(h) for h in hosts), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        skipped = sum(r is None for r in results)
        more = [f"{len(errors) - 1} other host(s) failed too"] if len(errors) > 1 else []
        more += [f"{skipped} not probed"] if skipped else []
        if not isinstance(errors[0], HostError) or not more:
            raise errors[0]
        raise HostError(f"{errors[0]} ({', '.join(more)})")
    return {h.name: t for h, t in zip(hosts, results) if isinstance(t, Topology)}


def topology_from_dict(d: Mapping[str, Any], host: Host) -> Topology:
    """A Topology rebuilt from ``scaler topology --json`` (usable cores only), restricted
    to the host's ``cpus`` when the hosts file gives them."""
    usable = tuple(d["usable_cpus"])
    if host.cpus is not None:
        missing = sorted(set(host.cpus) - set(usable))
        if missing:
            raise ValueError(f"cpus {format_cpulist(missing)} of the hosts file are not usable "
                             f"there (usable: {d['usable_cpulist']})")
        usable = tuple(c for c in usable if c in set(host.cpus))
    cores = tuple(Core(c["package"], c["die"], c["core_id"], c["node"], tuple(c["cpus"]),
                       c.get("kind", "")) for c in d["physical_cores"])
    cpus = tuple(Cpu(cpu, True, c.package, c.die, c.core_id, c.node)
                 for c in cores for cpu in c.cpus)
    nodes = tuple(Node(n["id"], tuple(n["cpus"]), n["memory_bytes"], n["has_cpu"],
                       tuple(n["distances"])) for n in d["nodes"])
    return Topology(cpus=cpus, cores=cores, nodes=nodes, packages=tuple(d["package_ids"]),
                    usable_cpus=usable, isa=tuple(d["isa"]),
                    sysfs_root=f"{host.name}:{d.get('sysfs_root', '/sys')}",
                    notes=tuple(d.get("notes", ())))


def topology_brief(topo: Topology) -> dict[str, Any]:
    """What a result keeps per remote instance about the machine it ran on."""
    return {"cores": len(topo.usable_cores), "cpus": len(topo.usable_cpus),
            "threads_per_core": topo.threads_per_core,
            "usable_cpulist": format_cpulist(topo.usable_cpus),
            "nodes": len(topo.cpu_nodes), "isa": list(topo.isa)}


async def _spawn(host: Host, argv: list[str], stdin: int) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT, start_new_session=True)  # Ctrl-C reaches the coordinator only
    except OSError as exc:
        raise HostError(f"host {host.name}: cannot run {argv[0]}: {exc.strerror or exc} "
                        "(apt-get install openssh-client)") from None


@register
class SshTarget(Target):
    """Workers on one remote host; the request's partition is in that host's CPU numbers."""

    name = "ssh"
    emulated = False

    def __init__(self, host: Host, topology: Topology | None = None, ssh: str = SSH,
                 limit: asyncio.Semaphore | None = None) -> None:
        self.host = host
        self.topology = topology
        self.ssh = ssh
        self.limit = limit  # shared by a fleet: ssh processes starting at once

    def instance_info(self, index: int) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.host.name, "destination": self.host.destination}
        if self.topology is not None:
            info["topology"] = topology_brief(self.topology)
        return {"host": info}

    async def start(self, request: WorkerRequest) -> RelayedProcess:
        """Start the worker over ssh. With a ``limit``, a slot is held from the ssh process's
        start until the worker's first protocol line (its ready report) or its end."""
        if self.limit is None:
            return await self._start(request, None)
        await self.limit.acquire()
        try:
            return await self._start(request, self.limit)
        except BaseException:
            self.limit.release()
            raise

    async def _start(self, request: WorkerRequest,
                     limit: asyncio.Semaphore | None) -> RelayedProcess:
        proc = await _spawn(self.host,
                            ssh_argv(self.host, ["-m", "scaler.worker", *request.spec.argv()],
                                     self.ssh),
                            stdin=asyncio.subprocess.PIPE)
        if limit is None:
            return RelayedProcess(proc, label=f"[{self.host.name}] ", summary=self._summary)
        held = [True]

        def release(*_: object) -> None:
            if held[0]:
                held[0] = False
                limit.release()

        def first(line: bytes) -> bytes:
            release()
            return line

        relayed = RelayedProcess(proc, label=f"[{self.host.name}] ", summary=self._summary,
                                 first_message=first)
        relayed._relays[0].add_done_callback(release)  # ended before its first line
        return relayed

    def _summary(self, proc: RelayedProcess, code: int | None) -> str | None:
        if code in (0, None) or code < 0:  # a clean end, or killed by the coordinator
            return None
        return explain_failure(self.host, code, "\n".join(proc.tail))


@register
class FleetTarget(Target):
    """Routes each request to the target of its host (one SshTarget per host)."""

    def __init__(self, routes: Mapping[str, Target]) -> None:
        self.routes = dict(routes)
        names = {t.name for t in self.routes.values()}
        self.name = names.pop() if len(names) == 1 else "+".join(sorted(names))
        self.emulated = any(t.emulated for t in self.routes.values())
        self._host_of: dict[int, str] = {}

    async def start(self, request: WorkerRequest) -> Any:
        if request.host not in self.routes:
            raise HostError(f"instance {request.index}: no host {request.host!r} in the fleet")
        self._host_of[request.index] = request.host
        return await self.routes[request.host].start(request)

    def instance_info(self, index: int) -> dict[str, Any]:
        route = self.routes.get(self._host_of.get(index, ""))
        return route.instance_info(index) if route is not None else {}
