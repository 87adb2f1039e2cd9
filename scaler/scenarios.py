"""The four scenarios of the study, run as groups of workers and saved as one run folder each.

Every scenario is a sequence of groups (N instances measured together). After each group the
run folder is saved again, atomically, so an interruption or a failed worker keeps everything
measured so far; such a run is marked ``partial`` with the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from affinity import Topology, plan, read_topology
from affinity.cpulist import format_cpulist
from scaler import results, stats, summaries
from scaler.coordinator import GroupOutcome, RunRules, WorkerPool, WorkerRequest, run_group
from scaler.engines.base import EngineSpec
from scaler.errors import UsageError
from scaler.progress import Reporter
from scaler.settings import Placement, Settings
from scaler.targets import Target
from scaler.targets.local import LocalTarget

# Rough resident memory of one worker: base + per image of the batch (measured here for
# ResNet50 224x224: tf fp32 0.75 GB at batch 1, 10.7 GB at 1024; tflite int8 0.1 / 2.2 GB).
MEMORY_MODEL_GB = {"tf": (0.75, 0.0097), "tflite": (0.1, 0.0021), "null": (0.05, 0.0)}


class Session:
    """One run folder being filled group by group."""

    def __init__(self, scenario: str, settings: Settings, spec: EngineSpec, out: Path,
                 topology: Topology, reporter: Reporter, target: Target | None = None) -> None:
        self.scenario = scenario
        self.settings = settings
        self.spec = spec
        self.topology = topology
        self.reporter = reporter
        self.target = target or LocalTarget()
        self.pool = WorkerPool()  # warm workers reused by the next group that wants them
        self.vm: Any = None  # the VmTarget, made for the first vm group
        self.hosts: tuple[Any, ...] = ()  # scaler.hosts.Host of --hosts, probed by setup()
        self.host_topologies: dict[str, Topology] = {}
        self.path = results.new_run_path(out, scenario)
        self.groups: list[dict[str, Any]] = []
        self.arrays: dict[str, Any] = {}
        self.partial_reasons: list[str] = []
        self.interrupted = False
        self.created = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self.rules = RunRules(min_duration_s=settings.min_duration_s,
                              min_queries=settings.min_queries, warmup_s=settings.warmup_s,
                              max_duration_s=settings.max_duration_s,
                              ready_timeout_s=settings.ready_timeout_s)

    @property
    def stopped(self) -> bool:
        return self.interrupted or bool(self.partial_reasons)

    async def setup(self) -> None:
        """Probe the ``--hosts`` machines (reachable, key accepted, scaler installed) and read
        their topologies, before any worker starts; HostError names the first that fails."""
        if self.settings.hosts_file:
            from scaler.hosts import load_hosts
            from scaler.targets.ssh import probe_all

            self.hosts = load_hosts(self.settings.hosts_file)
            self.host_topologies = await probe_all(self.hosts)

    def close(self) -> None:
        if self.vm is not None:
            self.vm.close()

    def target_for(self, placement: Placement, n: int) -> Target:
        """Local workers, one VM each (vm), or each instance on its host (--hosts)."""
        if placement is Placement.vm:
            if self.vm is None:
                self.vm = make_vm_target(self.settings, self.topology)
            return self.vm
        if self.hosts:
            from scaler.targets.ssh import FleetTarget, SshTarget

            targets = {h.name: SshTarget(h, self.host_topologies.get(h.name)) for h in self.hosts}
            return FleetTarget({k: targets[self._host_of(k).name] for k in range(n)})
        return self.target

    def _host_of(self, k: int) -> Any:
        return self.hosts[k % len(self.hosts)]  # instances are dealt to hosts in turn

    # -- groups ------------------------------------------------------------------------------

    def requests(self, placement: Placement, n: int, batch: int) -> tuple[list[WorkerRequest],
                                                                         dict[str, Any]]:
        """Worker requests for N instances in a placement, and how they were laid out."""
        usable = self.topology.usable_cpus
        cores = len(self.topology.usable_cores)
        spec = replace(self.spec, batch=batch)
        common = ["--engine", spec.engine, "--precision", spec.precision, "--model", spec.model,
                  "--batch", str(batch), "--warmup-s", str(self.rules.warmup_s)]
        if spec.cache_dir:
            common += ["--cache-dir", spec.cache_dir]
        layout: dict[str, Any] = {"cores": cores, "cpus": len(usable),
                                  "oversubscribed": n > cores}
        reqs = []
        if self.hosts:
            return self._remote_requests(placement, n, common)
        if placement is Placement.shared:
            threads = len(usable)
            for k in range(n):
                args = [*common, "--instance", str(k), "--threads", str(threads)]
                reqs.append(WorkerRequest(k, tuple(args), None))
            layout["oversubscription"] = n * threads / len(usable)
        else:
            the_plan = plan(self.topology, n, smt=self.settings.smt, oversubscribe=True)
            for k, part in enumerate(the_plan.partitions):
                args = [*common, "--instance", str(k), "--cpus", format_cpulist(part.cpus),
                        "--nodes", format_cpulist(part.nodes), "--threads", str(len(part.cpus))]
                if placement is Placement.vm:  # in the guest: all its vCPUs and NUMA nodes
                    from scaler.targets.vmplan import guest_partition

                    g = guest_partition(part.cpus, part.nodes, self.topology)
                    args = [*common, "--instance", str(k), "--cpus", format_cpulist(g.cpus),
                            "--nodes", format_cpulist(g.nodes), "--threads", str(g.threads)]
                reqs.append(WorkerRequest(k, tuple(args), {"cpus": list(part.cpus),
                                                           "nodes": list(part.nodes)}))
            layout["oversubscription"] = the_plan.oversubscription
            layout["plan_warnings"] = list(the_plan.warnings)
        return reqs, layout

    def _remote_requests(self, placement: Placement, n: int, common: list[str]
                         ) -> tuple[list[WorkerRequest], dict[str, Any]]:
        """N instances dealt to the hosts in turn; each host's share planned on its topology."""
        share: dict[str, list[int]] = {}
        for k in range(n):
            share.setdefault(self._host_of(k).name, []).append(k)
        reqs: dict[int, WorkerRequest] = {}
        layout: dict[str, Any] = {"cores": 0, "cpus": 0, "oversubscribed": False,
                                  "oversubscription": 0.0, "plan_warnings": [], "hosts": {}}
        for name, ks in share.items():
            topo = self.host_topologies[name]
            cores, usable = len(topo.usable_cores), topo.usable_cpus
            layout["hosts"][name] = {"instances": len(ks), "cores": cores, "cpus": len(usable)}
            layout["cores"] += cores
            layout["cpus"] += len(usable)
            layout["oversubscribed"] |= len(ks) > cores
            if placement is Placement.shared:
                layout["oversubscription"] = max(layout["oversubscription"], float(len(ks)))
                for k in ks:
                    args = [*common, "--instance", str(k), "--cpus", format_cpulist(usable),
                            "--threads", str(len(usable))]
                    reqs[k] = WorkerRequest(k, tuple(args), None)
                continue
            the_plan = plan(topo, len(ks), smt=self.settings.smt, oversubscribe=True)
            layout["oversubscription"] = max(layout["oversubscription"], the_plan.oversubscription)
            layout["plan_warnings"] += [f"{name}: {w}" for w in the_plan.warnings]
            for k, part in zip(ks, the_plan.partitions):
                args = [*common, "--instance", str(k), "--cpus", format_cpulist(part.cpus),
                        "--nodes", format_cpulist(part.nodes), "--threads", str(len(part.cpus))]
                reqs[k] = WorkerRequest(k, tuple(args), {"cpus": list(part.cpus),
                                                         "nodes": list(part.nodes)})
        return [reqs[k] for k in range(n)], layout

    async def group(self, placement: Placement, n: int, batch: int,
                    label: str | None = None, **extra: Any) -> dict[str, Any]:
        """Measure one group and add it to the run (saved at once)."""
        gid = len(self.groups)
        label = label or f"{placement.value} x{n} batch {batch}"
        reqs, layout = self.requests(placement, n, batch)
        target = self.target_for(placement, n)
        if placement is Placement.vm:
            self.vm.plan_memory([r.partition for r in reqs], self.settings.vm_memory_mb,
                                worker_memory_gb(self.spec.engine, batch))
        elif not self.hosts:  # a remote host's memory is its own business
            self.check_memory(n, batch)
        self.reporter.group_started(label, self.rules)
        outcome = await run_group(reqs, self.rules, target, self.reporter.event, self.pool)
        record = self.record(gid, placement, n, batch, layout, outcome, target)
        record.update(label=label, **extra)
        self.groups.append(record)
        if outcome.interrupted:
            self.interrupted = True
            self.partial_reasons.append(f"interrupted during {label}")
        elif not outcome.complete:
            self.partial_reasons.append(f"{label}: " + "; ".join(outcome.errors))
        self.reporter.group_done(label, record)
        self.save()
        return record

    def record(self, gid: int, placement: Placement, n: int, batch: int, layout: dict[str, Any],
               outcome: GroupOutcome, target: Target | None = None) -> dict[str, Any]:
        import numpy as np

        target = target or self.target
        instance_info = getattr(target, "instance_info", None)
        starts, ends, per_instance = [], [], []
        boot_ids = set()
        clocks: list[tuple[str, str]] = []  # (host, boot id) of each instance with samples
        for inst in outcome.instances:
            entry: dict[str, Any] = {"index": inst.index, "status": inst.status,
                                     "partition": inst.partition}
            if inst.error:
                entry["error"] = inst.error
                entry["stderr_tail"] = inst.stderr_tail[-15:]
            if instance_info is not None:
                entry.update(instance_info(inst.index))
            if inst.ready:
                r = inst.ready
                boot_ids.add(r.get("boot_id"))
                entry.update(pid=r.get("pid"), reused=bool(r.get("reused")),
                             binding=r.get("binding"),
                             threads=r.get("threads"),
                             engine=r.get("engine"), hostname=r.get("hostname"),
                             load_s=r.get("load_s"), isa=r.get("isa"))
            if inst.start_ns is not None:
                s = np.frombuffer(inst.start_ns, dtype=np.int64)
                e = np.frombuffer(inst.end_ns, dtype=np.int64)
                self.arrays[f"g{gid}_i{inst.index}_start_ns"] = s
                self.arrays[f"g{gid}_i{inst.index}_end_ns"] = e
                starts.append(s)
                ends.append(e)
                clocks.append(((entry.get("host") or {}).get("name", ""),
                               str((inst.ready or {}).get("boot_id") or "")))
                lat = stats.latency_ms(s, e)
                span_s = (e[-1] - s[0]) / 1e9 if len(s) else 0.0
                entry.update(queries=int(len(s)), latency_ms=lat,
                             throughput_ips=len(s) * batch / span_s if span_s else 0.0)
            per_instance.append(entry)
        status = "complete" if outcome.complete else "partial"
        record: dict[str, Any] = {
            "id": gid, "placement": placement.value, "target": target.name,
            "emulated": target.emulated, "engine": self.spec.engine,
            "precision": self.spec.precision, "model": self.spec.model, "batch": batch,
            "instances": n, **layout, "status": status, "errors": outcome.errors,
            "wall_s": round(outcome.wall_s, 3), "per_instance": per_instance,
        }
        if starts and status == "complete":
            # one clock only if every worker saw the same (known) boot: VMs and hosts differ
            shared = len(boot_ids) == 1 and bool(next(iter(boot_ids)))
            ips, how = stats.throughput_ips(starts, ends, batch, shared_clock=shared)
            if self.hosts:
                per_host = per_host_throughput(clocks, starts, ends, batch)
                record["per_host"] = per_host
                ips = sum(h["throughput_ips"] for h in per_host.values())
                how = {"method": "sum_over_hosts", "hosts": len(per_host)}
            all_s, all_e = np.concatenate(starts), np.concatenate(ends)
            lat = stats.latency_ms(all_s, all_e)
            record.update(throughput_ips=ips, throughput=how, queries=int(all_s.size),
                          latency_ms=lat, warnings=stats.sample_warnings(int(all_s.size)))
            if outcome.under_min_queries:
                record["warnings"].append(
                    f"stopped at max duration {self.rules.max_duration_s:g} s before "
                    f"{self.rules.min_queries} queries")
        return record

    def check_memory(self, n: int, batch: int) -> None:
        """Refuse clearly when N workers at this batch cannot fit in available memory."""
        if self.spec.model != "resnet50":
            return  # the model is known only for the built-in ResNet50
        need = n * worker_memory_gb(self.spec.engine, batch) * 2**30
        avail = available_memory_bytes()
        if avail is not None and need > avail:
            raise UsageError(
                f"{n} {self.spec.engine} worker(s) at batch {batch} need about "
                f"{need / 2**30:.1f} GiB but only {avail / 2**30:.1f} GiB is available: "
                "use a smaller --batch or fewer instances")

    # -- saving ------------------------------------------------------------------------------

    def document(self, finished: bool) -> dict[str, Any]:
        status = "partial" if self.stopped else ("complete" if finished else "running")
        doc = {
            "scenario": self.scenario, "status": status,
            "partial_reasons": self.partial_reasons, "created": self.created,
            "command": results.command_line(),
            "requested": self.settings.to_dict(),
            "effective": {"engine": self.spec.engine, "precision": self.spec.precision,
                          "model": self.spec.model, "rules": self.rules.__dict__},
            "host": {**results.host_info(), "topology": self.topology.to_dict()},
            "emulated": any(g.get("emulated") for g in self.groups),
            "groups": self.groups,
        }
        if self.hosts:
            doc["hosts"] = {h.name: {**h.to_dict(),
                                     "topology": self.host_topologies[h.name].to_dict()}
                            for h in self.hosts if h.name in self.host_topologies}
        if self.vm is not None:
            doc["vm"] = self.vm.describe()
        doc["summary"] = summaries.summarize({**doc, "schema_version": results.SCHEMA_VERSION},
                                             str(self.path))
        return doc

    def save(self, finished: bool = False) -> Path:
        return results.save_run(self.path, self.document(finished), self.arrays)


def per_host_throughput(clocks: list[tuple[str, str]], starts: list[Any], ends: list[Any],
                        batch: int) -> dict[str, dict[str, Any]]:
    """Images/s of each host's instances; their common window when they share one boot."""
    out: dict[str, dict[str, Any]] = {}
    for host in dict.fromkeys(h for h, _ in clocks):
        picked = [k for k, (h, _) in enumerate(clocks) if h == host]
        boots = {clocks[k][1] for k in picked}
        ips, how = stats.throughput_ips([starts[k] for k in picked], [ends[k] for k in picked],
                                        batch, shared_clock=len(boots) == 1 and "" not in boots)
        out[host] = {"instances": len(picked), "throughput_ips": ips, "throughput": how}
    return out


def worker_memory_gb(engine: str, batch: int) -> float:
    base_gb, per_image_gb = MEMORY_MODEL_GB.get(engine, (0.75, 0.0097))
    return base_gb + per_image_gb * batch


def make_vm_target(settings: Settings, topology: Topology) -> Any:
    """The VM target of these settings (checks the kernel and QEMU; boots nothing yet)."""
    from scaler.targets.vm import VmTarget

    return VmTarget(topology, kernel=settings.vm_kernel, memory_mb=settings.vm_memory_mb,
                    accel=settings.vm_accel, hugepages=settings.vm_hugepages)


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- the scenarios ---------------------------------------------------------------------------

async def latency(s: Session) -> None:
    await s.group(s.settings.placements[0], 1, 1)


async def throughput(s: Session) -> None:
    await s.group(s.settings.placements[0], 1, s.settings.batch)


async def scaling(s: Session) -> None:
    for placement in s.settings.placements:
        for n in s.settings.instances:
            if s.stopped:
                return
            await s.group(placement, n, 1, series=placement.value)


async def multistream(s: Session) -> None:
    """Largest batch whose latency (at the chosen statistic) stays under the bound, per layout.

    Layouts: one instance over the whole machine, then N pinned instances for each N of
    ``--instances`` above 1 that fits the cores. Batch sizes are searched by doubling from 1
    and then bisecting between the last batch that met the bound and the first that did not.
    """
    cores = len(s.topology.usable_cores)
    layouts = sorted({1, *(n for n in s.settings.instances if 1 < n <= cores)})
    for n in layouts:
        await search_batch(s, n)
        if s.stopped:
            return


async def search_batch(s: Session, n: int) -> None:
    bound, stat, cap = s.settings.latency_bound_ms, s.settings.stat.value, s.settings.max_batch
    layout = f"pinned x{n}"
    good, bad = 0, None

    async def probe(batch: int) -> bool:
        rec = await s.group(Placement.pinned, n, batch, label=f"{layout} batch {batch}",
                            layout=layout, probe=True)
        value = rec.get("latency_ms", {}).get(stat)
        return value is not None and value <= bound and rec["status"] == "complete"

    batch = 1
    while batch <= cap and not s.stopped:
        if await probe(batch):
            good, batch = batch, batch * 2
        else:
            bad = batch
            break
    while bad is not None and bad - good > 1 and not s.stopped:
        mid = (good + bad) // 2
        if await probe(mid):
            good = mid
        else:
            bad = mid


SCENARIOS: dict[str, Callable[[Session], Awaitable[None]]] = {
    "latency": latency, "throughput": throughput, "scaling": scaling, "multistream": multistream,
}


def prepare(settings: Settings, sysfs_root: str = "/sys") -> tuple[EngineSpec, Topology]:
    """Validate the settings against this machine before any worker starts."""
    from scaler.engines import check_spec

    topology = read_topology(sysfs_root)
    spec = check_spec(EngineSpec(engine=settings.engine or "auto", precision=settings.precision,
                                 model=settings.model, batch=settings.batch,
                                 cache_dir=settings.cache_dir), topology.isa)
    if Placement.vm in settings.placements:
        if settings.hosts_file:
            raise UsageError("the vm placement boots VMs on this machine: it cannot be combined "
                             "with --hosts (list existing VMs in the hosts file instead)")
        vm = make_vm_target(settings, topology)  # a missing kernel or QEMU: usage error now
        vm.check_spec(spec.precision, spec.engine)  # a guest CPU that cannot run it
        for n in settings.instances:  # and VMs that cannot fit their NUMA nodes or QEMU
            parts = plan(topology, n, smt=settings.smt, oversubscribe=True).partitions
            vm.plan_memory([{"cpus": list(p.cpus), "nodes": list(p.nodes)} for p in parts],
                           settings.vm_memory_mb, worker_memory_gb(spec.engine, settings.batch))
    if settings.hosts_file:
        from scaler.hosts import load_hosts

        load_hosts(settings.hosts_file)
    return spec, topology


async def run_scenario(name: str, settings: Settings, out: Path, reporter: Reporter,
                       target: Target | None = None,
                       prepared: tuple[EngineSpec, Topology] | None = None) -> Session:
    """Run one scenario into a new run folder under ``out``; returns the session (saved).

    Ctrl-C and SIGTERM cancel the scenario: the current group is stopped, what it measured is
    kept, the run is saved as partial and ``session.interrupted`` is set.
    """
    spec, topology = prepared or prepare(settings)
    session = Session(name, settings, spec, out, topology, reporter, target)
    with _signals_cancel(asyncio.current_task(), signal.SIGINT, signal.SIGTERM):
        await session.setup()  # before the run folder exists: a dead host leaves no run
        try:
            await SCENARIOS[name](session)
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # a second Ctrl-C: still save
                await asyncio.shield(session.pool.close())
            session.close()
            session.save(finished=True)
    return session


@contextlib.contextmanager
def _signals_cancel(task: asyncio.Task[Any] | None, *signals: int) -> Iterator[None]:
    """Within the block, these signals cancel the task instead of raising KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in signals:
        loop.add_signal_handler(sig, task.cancel)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
