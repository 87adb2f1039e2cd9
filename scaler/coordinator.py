"""The coordinator: run one group of workers together and collect their samples.

A group is N instances measured at the same time (one point of a scaling curve). The
coordinator starts every worker, waits for each ``ready`` under a deadline, sends ``start``
to all in one go, stops them when the run rules are met, and collects raw samples. It waits
on the workers' streams with deadlines and never polls with sleep. Whatever happens (a worker
that dies, errors or stalls; Ctrl-C; SIGTERM) every worker is gone when ``run_group`` returns,
and the samples of the instances that finished are kept.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler.errors import ScalerError
from scaler.noise import WindowProbe
from scaler.stoprule import Watch
from scaler.stoprule import allowed_over as _allowed_over
from scaler.targets import Target
from scaler.worker import protocol
from scaler.worker.protocol import WorkerRequest

__all__ = ["GroupOutcome", "InstanceOutcome", "RunRules", "WorkerPool", "WorkerRequest",
           "_allowed_over", "run_group"]

STDERR_TAIL_LINES = 40


@dataclass(frozen=True)
class RunRules:
    """LoadGen-style run rules: at least ``min_duration_s`` AND at least ``min_queries``."""

    min_duration_s: float = 10.0
    min_queries: int = 100  # over all instances of the group
    warmup_s: float = 2.0
    max_duration_s: float = 600.0  # stop even if min_queries is not reached (then say so)
    ready_timeout_s: float = 300.0
    stall_timeout_s: float = 60.0  # longest silence from a running worker
    # a latency bound the group is tested against (multistream): the measurement ends early
    # once more queries are over it than ``bound_percentile`` could still allow at
    # ``min_queries`` (LoadGen's early stopping: the probe cannot pass any more)
    latency_bound_ms: float | None = None
    bound_percentile: float | None = None  # e.g. 0.99


@dataclass
class InstanceOutcome:
    index: int
    partition: dict[str, Any] | None
    status: str = "starting"  # ready, complete, failed
    error: str | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    start_ns: Any = None  # array('q') of query start times (monotonic ns)
    end_ns: Any = None
    stderr_tail: list[str] = field(default_factory=list)
    # samples received in chunks while measuring; a failed worker keeps them
    _starts: list[Any] = field(default_factory=list, repr=False)
    _ends: list[Any] = field(default_factory=list, repr=False)

    def absorb(self, message: dict[str, Any]) -> None:
        """Keep the samples of a ``chunk`` or ``samples`` message."""
        self._starts.append(protocol.unpack_int64(message["start_ns"]))
        self._ends.append(protocol.unpack_int64(message["end_ns"]))

    def gather(self) -> None:
        """Join the samples received so far (all of them, or those before a failure)."""
        if self._starts:
            start, end = array("q"), array("q")
            for part in self._starts:
                start.extend(part)
            for part in self._ends:
                end.extend(part)
            self.start_ns, self.end_ns = start, end

    @property
    def samples_until_failure(self) -> bool:
        return self.status != "complete" and self.start_ns is not None


@dataclass
class GroupOutcome:
    instances: list[InstanceOutcome]
    interrupted: bool = False
    under_min_queries: bool = False
    capped_early: list[int] = field(default_factory=list)  # hit --max-queries before the
    # min duration: the duration rule was not met for them
    wall_s: float = 0.0
    bound_failed: bool = False  # stopped early: too many queries over the latency bound
    noise: dict[str, Any] = field(default_factory=dict)  # the noise meter of the window
    speed_probe: dict[str, Any] = field(default_factory=dict)  # speedprobe at both edges
    stall_s: float | None = None  # the silence after which a worker counted as stalled
    # the closed-loop window: requested queries and duration, what ended it, each worker's
    # start (``scaler.stoprule``); the record adds the recorded counts from the samples
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.interrupted and all(i.status == "complete" for i in self.instances)

    @property
    def errors(self) -> list[str]:
        return [f"instance {i.index}: {i.error}" for i in self.instances if i.error]


class WorkerFailed(Exception):
    pass


class Worker:
    """One running worker process and its protocol streams."""

    def __init__(self, request: WorkerRequest, proc: asyncio.subprocess.Process) -> None:
        self.request = request
        self.proc = proc
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def send(self, type_: str, **fields: Any) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(protocol.encode({"type": type_, **fields}))

    async def recv(self) -> dict[str, Any]:
        """The next protocol message; WorkerFailed when the worker exits or reports an error."""
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                code = await self._exit_code()
                raise WorkerFailed(f"exited with code {code} {self._stderr_hint()}".rstrip())
            message = protocol.decode(line)
            if message is None:
                continue
            if message["type"] == "error":
                raise WorkerFailed(f"{message.get('kind', 'error')}: {message.get('message')}")
            return message

    async def _exit_code(self) -> int | None:
        with contextlib.suppress(asyncio.TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), 5.0)
        return None

    def _stderr_hint(self) -> str:
        tail = [line for line in self.stderr_tail if line.strip()]
        return f"(stderr: {tail[-1].strip()[:200]})" if tail else ""

    async def close(self, grace_s: float = 2.0) -> None:
        """Ask the worker to exit; kill its process group if it does not within ``grace_s``.
        Whatever the worker forked and left behind in its group (a library's helper process
        that outlives it: openvino's telemetry did) is killed once the worker has gone."""
        if self.proc.returncode is None:
            self.send("exit")
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.kill()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives its leader
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._stderr_task, 2.0)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class WorkerPool:
    """Warm workers kept between the groups of one scenario.

    Starting a TensorFlow worker (import, model build, tracing, warm-up) costs seconds of CPU,
    and a 1..8 sweep that starts fresh workers for every N spends most of its time there. A
    worker that finished a group cleanly is kept idle (blocked on its stdin: no CPU) and
    handed to a later group that asks for exactly the same instance: same target, arguments
    and partition. Idle workers that the next group does not want are closed before it starts.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[Any, ...], list[tuple[Worker, dict[str, Any]]]] = {}

    @staticmethod
    def _key(target: Target, request: WorkerRequest) -> tuple[Any, ...]:
        return (id(target), request.spec, request.host,
                json.dumps(request.partition, sort_keys=True))

    def take(self, target: Target, request: WorkerRequest
             ) -> tuple[Worker, dict[str, Any]] | None:
        found = self._idle.get(self._key(target, request))
        while found:
            worker, ready = found.pop()
            if worker.proc.returncode is None:
                return worker, ready
        return None

    def put(self, target: Target, request: WorkerRequest, worker: Worker,
            ready: dict[str, Any]) -> None:
        self._idle.setdefault(self._key(target, request), []).append((worker, ready))

    async def release_except(self, target: Target, requests: list[WorkerRequest]) -> None:
        """Close the idle workers that none of ``requests`` wants (frees their memory before
        the next group's memory check and start)."""
        wanted = {self._key(target, r) for r in requests}
        unwanted = [w for key, entries in self._idle.items() if key not in wanted
                    for w, _ in entries]
        self._idle = {k: v for k, v in self._idle.items() if k in wanted}
        await close_workers(unwanted)

    async def close(self) -> None:
        idle = [w for entries in self._idle.values() for w, _ in entries]
        self._idle.clear()
        await close_workers(idle)


EventSink = Callable[..., None]


def _ignore(*_: Any, **__: Any) -> None:
    pass


# Waits use asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for swallows a
# cancellation that arrives as the awaited message does, and Ctrl-C would then be lost.


async def run_group(requests: list[WorkerRequest], rules: RunRules, target: Target,
                    on_event: EventSink = _ignore, pool: WorkerPool | None = None,
                    probe: WindowProbe | None = None) -> GroupOutcome:
    """Run the instances of one group together; always returns, with every worker gone
    (or, with a ``pool``, the workers that completed cleanly kept idle in it).

    A worker that cannot start, dies, errors or stalls fails its instance, not the group's
    others; what it measured before is kept. Cancellation (Ctrl-C, SIGTERM) is turned into
    an outcome marked ``interrupted`` that keeps the samples the workers can still hand over
    (they finish the query they are in: the deadline scales with the slowest query). A
    ``probe`` measures others' CPU use over the measured window.
    """
    began = time.monotonic()
    outcome = GroupOutcome([InstanceOutcome(r.index, r.partition) for r in requests])
    workers: list[Worker | None] = []  # one per instance; None: it could not start
    try:
        await start_workers(requests, target, workers, outcome, rules, on_event, pool)
        if all(i.status == "ready" for i in outcome.instances):
            edges = outcome.speed_probe.setdefault("edges", [])
            if probe is not None:  # the workers idle on both edges (see speedprobe)
                edges.append(await speed_edge(probe.cpus))
            await _measure([w for w in workers if w is not None], outcome, rules, on_event,
                           probe)
            if probe is not None:
                edges.append(await speed_edge(probe.cpus))
    except asyncio.CancelledError:
        outcome.interrupted = True
        on_event("interrupted")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(_collect(workers, outcome, deadline_s=_stop_deadline(outcome)))
    finally:
        if probe is not None and not outcome.noise:
            outcome.noise = probe.end()
        try:
            await release_workers(workers, outcome, pool, target)
        finally:
            for i in outcome.instances:
                i.gather()
            outcome.wall_s = time.monotonic() - began
    return outcome


async def speed_edge(cpus: tuple[int, ...]) -> dict[str, Any]:
    """The speed probe on ``cpus`` off the event loop's thread (one pinned thread each);
    ``SCALER_SPEED_PROBE=off`` leaves it out (the testbed's emulated guest), on record."""
    from scaler import speedprobe

    if not speedprobe.enabled():
        return {"not_measured": "SCALER_SPEED_PROBE=off"}
    return await asyncio.to_thread(speedprobe.probe, cpus)


async def release_workers(workers: list[Worker | None], outcome: Any, pool: Any,
                          target: Any) -> None:
    """After a group: workers that completed cleanly go back to ``pool`` (unless the group
    was interrupted), the others are closed; each instance keeps its worker's stderr tail,
    read after closing (a VM's console and its end, relayed, are in it too)."""
    kept = []
    if pool is not None and not outcome.interrupted:
        for w, inst in zip(workers, outcome.instances):
            if w is not None and inst.status == "complete" and w.proc.returncode is None:
                pool.put(target, w.request, w, inst.ready)
                kept.append(w)
    try:
        await asyncio.shield(close_workers([w for w in workers
                                            if w is not None and w not in kept]))
    finally:
        for i, w in zip(outcome.instances, workers):
            if w is not None:
                i.stderr_tail = list(w.stderr_tail)


def _stop_deadline(outcome: GroupOutcome) -> float:
    """How long stopped workers get to hand over their samples: they first finish the query
    they are in, which for a large batch takes far longer than a few seconds."""
    slowest = max((float(i.ready.get("warmup_last_query_s", 0)) for i in outcome.instances),
                  default=0.0)
    return max(5.0, 3.0 * slowest + 2.0)


async def start_workers(requests: list[WorkerRequest], target: Target,
                 workers: list[Worker | None],
                 outcome: GroupOutcome, rules: RunRules, on_event: EventSink,
                 pool: WorkerPool | None) -> None:
    """Take warm workers from the pool, start the others; a start that fails (a VM that
    cannot boot, a host that refuses) fails its instance, and every warm worker taken is
    closed with the group's (none is left outside both the pool and the group)."""
    if pool is not None:
        await pool.release_except(target, requests)  # free memory before any start
    warm = [pool.take(target, r) if pool is not None else None for r in requests]
    failed: dict[int, str] = {}
    for request, hit in zip(requests, warm):
        if hit is not None:
            workers.append(hit[0])
            continue
        try:
            workers.append(Worker(request, await target.start(request)))
        except (OSError, ScalerError) as exc:
            failed[len(workers)] = f"could not start: {' '.join(str(exc).split())}"
            workers.append(None)
    on_event("started", workers=len(workers))

    async def ready(k: int, w: Worker | None, inst: InstanceOutcome, hit: Any) -> None:
        if w is None:
            inst.status, inst.error = "failed", failed[k]
            return
        if hit is not None:  # already warm: its ready report stands, marked as reused
            inst.ready, inst.status = {**hit[1], "reused": True}, "ready"
            on_event("ready", instance=inst.index, pid=hit[1].get("pid"))
            return
        try:
            async with asyncio.timeout(rules.ready_timeout_s):
                message = await w.recv()
            if message["type"] != "ready":
                raise WorkerFailed(f"sent {message['type']!r} before 'ready'")
            inst.ready, inst.status = message, "ready"
            on_event("ready", instance=inst.index, pid=message.get("pid"))
        except TimeoutError:
            inst.status, inst.error = "failed", (
                f"not ready within {rules.ready_timeout_s:g} s {w._stderr_hint()}".rstrip())
        except WorkerFailed as exc:
            inst.status, inst.error = "failed", str(exc)

    await asyncio.gather(*(ready(k, w, i, h) for k, (w, i, h)
                           in enumerate(zip(workers, outcome.instances, warm))))


async def _measure(workers: list[Worker], outcome: GroupOutcome, rules: RunRules,
                   on_event: EventSink, probe: WindowProbe | None = None) -> None:
    """Start all, wait until the run rules are met (or a worker fails), stop, collect.
    Samples arrive in chunks meanwhile; the probe measures the common window."""
    events: asyncio.Queue[tuple[int, dict[str, Any] | Exception]] = asyncio.Queue()
    slowest_query_s = max(float(i.ready.get("warmup_last_query_s", 0)) for i in outcome.instances)
    stall_s = max(rules.stall_timeout_s, 10 * slowest_query_s)  # a long batch is not a stall
    outcome.stall_s = stall_s
    watch = Watch(len(workers), rules, stall_s,
                  boot_ids=[i.ready.get("boot_id") for i in outcome.instances])
    for k, w in enumerate(workers):
        w.send("start", **watch.first_limits(k))
    on_event("measuring", min_duration_s=rules.min_duration_s, min_queries=rules.min_queries)
    pumps = [asyncio.ensure_future(_pump(k, w, events)) for k, w in enumerate(workers)]
    try:
        while not watch.enough(now := time.monotonic()):
            stalled = watch.stalled(now)
            for k in stalled:
                outcome.instances[k].status = "failed"
                outcome.instances[k].error = (f"stalled: no report for {stall_s:g} s "
                                              f"{workers[k]._stderr_hint()}").rstrip()
            if stalled:
                break
            try:
                async with asyncio.timeout(watch.wake_in(now)):
                    k, message = await events.get()
            except TimeoutError:
                continue
            if not _handle(k, message, watch, outcome, workers, on_event, probe):
                break
            if not watch.enough(time.monotonic()):
                for j, limits in watch.changed_limits():
                    workers[j].send("limits", **limits)
        outcome.under_min_queries = sum(watch.queries) < rules.min_queries
        outcome.capped_early = sorted(watch.capped_early)
        outcome.bound_failed = watch.bound_failed
    finally:
        _send_stop(workers, outcome)  # first: the others run on until it arrives
        outcome.window = watch.window(time.monotonic())
        if probe is not None:
            outcome.noise = probe.end()
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        while not events.empty():  # chunks that arrived as the loop ended are samples too
            k, message = events.get_nowait()
            if isinstance(message, dict) and message["type"] in ("chunk", "samples"):
                outcome.instances[k].absorb(message)
    await _collect(workers, outcome, deadline_s=stall_s, stop_sent=True)


def _live(workers: list[Worker | None], outcome: GroupOutcome
          ) -> list[tuple[Worker, InstanceOutcome]]:
    return [(w, i) for w, i in zip(workers, outcome.instances)
            if w is not None and i.status == "ready" and w.proc.returncode is None]


def _send_stop(workers: list[Worker | None], outcome: GroupOutcome) -> None:
    for w, _ in _live(workers, outcome):
        w.send("stop")


def _handle(k: int, message: dict[str, Any] | Exception, watch: Watch, outcome: GroupOutcome,
            workers: list[Worker], on_event: EventSink, probe: WindowProbe | None) -> bool:
    """Act on one message from worker ``k``; False when the measurement must end."""
    inst = outcome.instances[k]
    if isinstance(message, Exception):
        inst.status, inst.error = "failed", str(message)
        return False
    was_open = watch.window_open
    watch.heard_from(k, message)
    if message["type"] == "chunk":
        inst.absorb(message)
        watch.count_over(message)
    if watch.window_open and not was_open and probe is not None:
        probe.begin(w.proc.pid for w in workers)
    if message["type"] in ("progress", "chunk"):
        on_event("progress", elapsed_s=watch.heard[k] - watch.t0, queries=sum(watch.queries))
    return True


async def _pump(k: int, w: Worker,
                events: asyncio.Queue[tuple[int, dict[str, Any] | Exception]]) -> None:
    """Forward a worker's messages to the group's queue until its samples (or its end)."""
    while True:
        try:
            message = await w.recv()
        except WorkerFailed as exc:
            await events.put((k, exc))
            return
        await events.put((k, message))
        if message["type"] == "samples":
            return


async def _collect(workers: list[Worker | None], outcome: GroupOutcome,
                   deadline_s: float, stop_sent: bool = False) -> None:
    """Send ``stop`` (unless sent already) and gather the samples of every worker still
    able to send them."""
    live = _live(workers, outcome)
    if not stop_sent:
        _send_stop(workers, outcome)

    async def samples(w: Worker, inst: InstanceOutcome) -> None:
        try:
            async with asyncio.timeout(deadline_s):
                while (message := await w.recv())["type"] != "samples":
                    if message["type"] == "chunk":
                        inst.absorb(message)
            inst.absorb(message)
            inst.status = "complete"
        except TimeoutError:
            inst.status, inst.error = "failed", f"no samples within {deadline_s:g} s of stop"
        except WorkerFailed as exc:
            inst.status, inst.error = "failed", str(exc)

    await asyncio.gather(*(samples(w, i) for w, i in live))


async def close_workers(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
