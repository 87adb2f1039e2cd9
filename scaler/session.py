"""A session: one run folder being filled group by group.

A scenario asks the session to measure groups (N instances of a placement at a batch size).
The session plans them with the placement, starts them on the placement's target through the
coordinator (reusing warm workers from its pool), turns each outcome into a record and saves
the run folder again, atomically, after every group: an interruption or a failed worker keeps
everything measured so far, and such a run is marked ``partial`` with the reasons.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from pathlib import Path
from typing import Any

from affinity import Topology
from scaler import (
    footprint,
    noise,
    placements,
    points,
    records,
    results,
    runfolders,
    speedprobe,
    summaries,
)
from scaler.coordinator import RunRules, WorkerPool, run_group
from scaler.engines import EngineSpec
from scaler.fleets import Fleet
from scaler.groupcpus import measured_cpus, plan_group
from scaler.layoutnames import split_cap
from scaler.lock import MeasurementLock
from scaler.placements import GroupPlan, InstancePlan, Placement
from scaler.progress import Reporter
from scaler.settings import Settings
from scaler.targets import Target, WorkerRequest
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec


class Session:
    """One run folder being filled group by group."""

    def __init__(self, scenario: str, settings: Settings, spec: EngineSpec, out: Path,
                 topology: Topology, reporter: Reporter, target: Target | None = None) -> None:
        self.scenario = scenario
        self.settings = settings
        self.spec = spec
        self.topology = topology
        self.reporter = reporter
        self.local_target = target or LocalTarget()
        self.pool = WorkerPool()  # warm workers reused by the next group that wants them
        self.fleet: Fleet | None = None  # the machines of --fleet/--hosts, probed by setup()
        self.fleet_key = "hosts"  # the run document's key for the fleet
        self.targets: dict[str, Target] = {}  # per placement, made on its first group
        self.path = runfolders.new_run_path(out, settings.experiment or scenario)
        self.groups: list[dict[str, Any]] = []
        self._points: dict[tuple[Any, ...], dict[str, Any]] = {}  # by key, as groups arrive
        self.arrays: dict[str, Any] = {}
        self.partial_reasons: list[str] = []
        self.notes: list[str] = []  # what the run decided on its own, said to the user
        self.harness: list[dict[str, Any]] = []  # null-engine probes of the harness's cost
        self.searches: dict[str, dict[str, Any]] = {}  # peak searches by layout
        self.interrupted = False
        self.stop_cause = "interrupted"  # what a stopping signal was (SIGHUP says so)
        self.lock: MeasurementLock | None = None  # set by run_scenario
        self.created = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        self.rules = RunRules(min_duration_s=settings.min_duration_s,
                              min_queries=settings.min_queries, warmup_s=settings.warmup_s,
                              max_duration_s=settings.max_duration_s,
                              ready_timeout_s=settings.ready_timeout_s,
                              stall_timeout_s=settings.stall_timeout_s)

    @property
    def stopped(self) -> bool:
        return self.interrupted or bool(self.partial_reasons)

    @property
    def emulated(self) -> bool:
        return any(g.get("emulated") for g in self.groups)

    async def setup(self) -> None:
        """Open the fleet (``--hosts``: probe the machines; ``--fleet slurm``: allocate and
        probe the nodes) before any worker starts (HostError, UsageError otherwise)."""
        from scaler import fleets

        opened = await fleets.open_fleet(self.settings)
        if opened is not None:
            provider, self.fleet = opened
            self.fleet_key = provider.record_key
        if self.settings.smt and self.topology.threads_per_core <= 1:
            self.note("--smt changes nothing here: this machine has one thread per core")

    def close(self) -> None:
        """Release what the targets hold (a VM's files); their workers are gone by then."""
        for target in self.targets.values():
            target.close()
        close = getattr(self.fleet, "close", None)  # what the fleet holds (an allocation)
        if close is not None:
            close()

    def placement(self, name: str) -> Placement:
        placement = placements.get(name).configured(self.settings)  # with the run's options
        return self.fleet.wrap(placement) if self.fleet else placement

    def target(self, placement: Placement) -> Target:
        if placement.name not in self.targets:
            made = placement.make_target(self.settings, self.topology)
            self.targets[placement.name] = made or self.local_target
        return self.targets[placement.name]

    def worker_spec(self, inst: InstancePlan, batch: int, threading: str = "tuned",
                    isa: str = "native") -> WorkerSpec:
        return WorkerSpec(engine=self.spec.engine, precision=self.spec.precision,
                          model=self.spec.model, batch=batch, instance=inst.index,
                          cpus=inst.worker_cpus, nodes=inst.worker_nodes, threads=inst.threads,
                          cache_dir=self.spec.cache_dir, warmup_s=self.rules.warmup_s,
                          threading=threading, isa=isa)

    def plan(self, placement: Placement, n: int) -> GroupPlan:
        return plan_group(placement, self.topology, n, smt=self.settings.smt,
                          cores_per_instance=self.settings.cores_per_instance,
                          oversubscribe=self.settings.oversubscribe)

    # -- groups ------------------------------------------------------------------------------

    async def group(self, placement_name: str, n: int, batch: int, label: str | None = None,
                    repeat: int = 0, rules: RunRules | None = None, threading: str = "tuned",
                    **extra: Any) -> dict[str, Any]:
        """Measure one closed-loop group (one repeat of a point) and add it to the run;
        ``threading`` is the style of its instances' runtime threads (``--threading``). A
        contended window (speed probe) is measured again, up to ``--remeasure`` times, in
        fresh workers: every attempt stays in the run, its point uses the last."""
        rules = rules or self.rules
        label = self._label(label or f"{self._who(placement_name, threading)} x{n} batch "
                            f"{batch}", repeat)

        async def once(attempt: int) -> tuple[dict[str, Any], Any]:
            placement, plan, reqs, target, probe, quiet = await self._prepare(
                placement_name, n, batch, label, rules, threading)
            outcome = await run_group(reqs, rules, target, self.reporter.event, self.pool,
                                      probe)
            record = records.group_record(len(self.groups), plan, batch, outcome, target,
                                          self._what(), rules, self.arrays)
            record.update(threading=threading, isa_cap=split_cap(placement_name)[1])
            self._check_kernels(record)
            if attempt:
                record["attempt"] = attempt
            return self._finish(record, outcome, label, repeat, quiet, probe, extra), outcome

        return await self._remeasured(label, once)

    async def _remeasured(self, label: str, once: Any) -> dict[str, Any]:
        """``once(attempt)``'s record, measured again in fresh workers while its window is
        contended (speed probe), up to ``--remeasure`` times; every attempt stays in the
        run."""
        for attempt in range(self.settings.remeasure + 1):
            record, outcome = await once(attempt)
            cause = speedprobe.remeasure_cause(record)
            if (cause is None or attempt == self.settings.remeasure or outcome.interrupted
                    or self.stopped):
                return record
            self.note_remeasure(record, label, cause)
            await self.fresh_workers()
        return record  # pragma: no cover - the loop returns

    def note_remeasure(self, record: dict[str, Any], label: str, cause: str) -> None:
        """Mark a contended attempt superseded (kept, left out of its point) and say so."""
        record["superseded"] = True
        self.reporter.message(f"remeasuring {label}: contended window ({cause})")

    async def serve(self, placement_name: str, n: int, rate_qps: float, count: int,
                    policy: Any, label: str | None = None, repeat: int = 0,
                    rules: RunRules | None = None, threading: str = "tuned",
                    **extra: Any) -> dict[str, Any]:
        """Serve ``count`` requests arriving at ``rate_qps`` (the server scenario) with one
        group and add it to the run; a contended window is served again as ``group`` measures
        again (the same arrivals: the same seed)."""
        from scaler import serving

        rules = rules or self.rules
        label = self._label(label or f"{self._who(placement_name, threading)} x{n} at "
                            f"{rate_qps:g} qps", repeat)
        seed = self.settings.seed * 1000 + repeat

        async def once(attempt: int) -> tuple[dict[str, Any], Any]:
            placement, plan, reqs, target, probe, quiet = await self._prepare(
                placement_name, n, policy.max_batch, label, rules, threading)
            outcome = await serving.serve_group(reqs, rules, target, rate_qps, count, seed,
                                                policy, self.reporter.event, self.pool, probe)
            record = records.served_record(len(self.groups), plan, outcome, target,
                                           self._what(), policy, rules.latency_bound_ms,
                                           self.arrays)
            record.update(seed=seed, threading=threading,
                          isa_cap=split_cap(placement_name)[1])
            if attempt:
                record["attempt"] = attempt
            return self._finish(record, outcome, label, repeat, quiet, probe, extra), outcome

        return await self._remeasured(label, once)

    def _check_kernels(self, record: dict[str, Any]) -> None:
        """Flag a group whose kernels' read-back contradicts its ISA cap."""
        from scaler.engines.kernels import cap_warnings

        found = cap_warnings(record.get("isa_cap"), record.get("per_instance") or [],
                             self.topology.isa, self.spec.precision)
        if found:
            record["kernel_warnings"] = found
            record.setdefault("warnings", []).extend(found)

    def _label(self, label: str, repeat: int) -> str:
        if self.settings.repeat > 1:
            label += f" (repeat {repeat + 1}/{self.settings.repeat})"
        return label

    def _who(self, placement: str, threading: str) -> str:
        """A group's placement as its label says it: with its style when the run sweeps
        styles or runs another than ``tuned``."""
        from scaler.threadstyles import series_name

        return series_name(placement, threading, self.settings.threading)

    def _what(self) -> dict[str, Any]:
        return {"engine": self.spec.engine, "precision": self.spec.precision,
                "model": self.spec.model}

    async def _prepare(self, placement_name: str, n: int, batch: int, label: str,
                       rules: RunRules, threading: str = "tuned") -> tuple[Any, ...]:
        """Plan the group, release unwanted warm workers, check memory, wait for a quiet
        machine if asked, and make its noise probe. ``placement_name`` is a layout name: the
        placement and, after ``@``, the ISA cap of its workers (``scenarios.styles``)."""
        name, cap = split_cap(placement_name)
        placement = self.placement(name)
        plan = self.plan(placement, n)
        reqs = [WorkerRequest(i.index, self.worker_spec(i, batch, threading, cap),
                              i.partition(), i.host)
                for i in plan.instances]
        target = self.target(placement)
        await self.pool.release_except(target, reqs)  # memory of idle workers freed first
        placement.check_memory(target, plan, self.settings, footprint.estimate_gb(
            self.spec.engine, self.spec.model, self.spec.precision, batch, self.spec.cache_dir))
        cpus = measured_cpus(plan, self.topology)
        quiet = None
        if cpus is not None and self.settings.quiet_wait_s > 0:
            quiet = await noise.wait_quiet(cpus, self.settings.noise_limit,
                                           self.settings.quiet_wait_s)
        probe = noise.WindowProbe(cpus, self.settings.noise_limit) if cpus else None
        self._reference = None
        if probe is not None and speedprobe.enabled():  # before this group's workers start
            await asyncio.to_thread(speedprobe.prepare, cpus)
            self._reference = await asyncio.to_thread(speedprobe.probe, cpus)  # idle CPUs
        self.reporter.group_started(label, rules)
        return placement, plan, reqs, target, probe, quiet

    def _finish(self, record: dict[str, Any], outcome: Any, label: str, repeat: int,
                quiet: dict[str, Any] | None, probe: Any, extra: dict[str, Any]
                ) -> dict[str, Any]:
        """Add a group's record to the run, update its point, say how it went, save."""
        record.update(label=label, repeat=repeat, **extra)
        if quiet is not None:
            record["quiet_wait"] = quiet
        if probe is None:
            record["noise"] = {"not_measured": "instances on other machines"}
        rss = [i.get("rss_peak_bytes") for i in record.get("per_instance", [])]
        if any(isinstance(r, int) for r in rss):  # this model's footprint, for later checks
            footprint.record(self.spec.engine, self.spec.model, self.spec.precision,
                             record.get("batch") or 1, max(r for r in rss if isinstance(r, int)),
                             self.spec.cache_dir)
        if record.get("speed_probe") and getattr(self, "_reference", None):
            record["speed_probe"]["reference"] = self._reference
        key = points.point_key(record)
        self.groups.append(record)
        speedprobe.judge(self.groups)  # against the run's idle speed so far
        self._points[key] = points.point_of(
            [g for g in self.groups if points.point_key(g) == key], self.arrays)
        if outcome.interrupted:
            self.interrupted = True
            self.partial_reasons.append(f"{self.stop_cause} during {label}")
        elif not outcome.complete:
            self.partial_reasons.append(f"{label}: " + "; ".join(outcome.errors))
        self.reporter.group_done(label, record)
        self.save()
        return record

    def note(self, text: str) -> None:
        """Say something the run decided (on stderr now, in run.json for later)."""
        if text not in self.notes:
            self.notes.append(text)
            self.reporter.message(f"note: {text}")

    def point(self, record: dict[str, Any]) -> dict[str, Any]:
        """The point (all repeats so far) that a group record belongs to."""
        return self._points[points.point_key(record)]

    async def fresh_workers(self) -> None:
        """Close the warm workers: the next group starts new processes (a new repeat)."""
        await self.pool.close()

    # -- saving ------------------------------------------------------------------------------

    def document(self, finished: bool) -> dict[str, Any]:
        status = "partial" if self.stopped else ("complete" if finished else "running")
        doc = {
            "scenario": self.scenario, "status": status,
            "writer": writer(),
            "partial_reasons": self.partial_reasons, "notes": self.notes,
            "created": self.created,
            "command": results.command_line(),
            "requested": self.settings.to_dict(),
            "effective": {"engine": self.spec.engine, "precision": self.spec.precision,
                          "model": self.spec.model, "rules": self.rules.__dict__},
            "host": {**results.host_info(), "topology": self.topology.to_dict()},
            "emulated": self.emulated,
            "groups": self.groups,
            "points": list(self._points.values()),
        }
        if self.harness:
            doc["harness"] = self.harness
        if self.searches:
            doc["searches"] = self.searches
        if self.fleet is not None:
            doc[self.fleet_key] = self.fleet.describe()
        if self.lock is not None:
            doc["lock"] = self.lock.describe()
        described = {name: target.describe() for name, target in self.targets.items()}
        described = {name: record for name, record in described.items() if record is not None}
        if described:  # by placement, e.g. "vm": accel, kernel, QEMU (results.target_record)
            doc["targets"] = described
        doc["summary"] = summaries.summarize({**doc, "schema_version": results.SCHEMA_VERSION},
                                             str(self.path))
        return doc

    def save(self, finished: bool = False) -> Path:
        try:
            return results.save_run(self.path, self.document(finished), self.arrays)
        except results.ResultsWriteError as exc:  # readers say why the run stopped there
            from scaler import runstate

            runstate.record_failed_save(self.path, str(exc))
            raise


def writer() -> dict[str, Any]:
    """Who is writing the run: a reader can tell a run still going from one whose process
    died (SIGKILL leaves ``running`` behind)."""
    import os
    import platform

    from scaler.hostfacts import boot_id

    return {"pid": os.getpid(), "started": process_start(os.getpid()),
            "hostname": platform.node(), "boot_id": boot_id()}


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot): tells a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None

