"""The coordinator: run one group of workers together and collect their samples.

A group is N instances measured at the same time (one point of a scaling curve). The
coordinator starts every worker, waits for each ``ready`` under a deadline, sends ``start``
to all in one go, stops them when the run rules are met, and collects raw samples. It waits
on the workers' streams with deadlines and never polls with sleep. Whatever happens (a worker
that dies, errors or stalls; Ctrl-C; SIGTERM) every worker is gone when ``run_group`` returns,
and the samples of the instances that finished are kept. The rules and what came of a group
are ``scaler.outcomes``; a worker process and the pool of warm ones ``scaler.workerproc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from scaler.errors import ScalerError
from scaler.noise import WindowProbe
from scaler.outcomes import GroupOutcome, InstanceOutcome, RunRules
from scaler.stoprule import Watch
from scaler.targets import Target
from scaler.worker.protocol import WorkerRequest
from scaler.workerproc import Worker, WorkerFailed, WorkerPool, close_workers

# what the callers of run_group import from here (serving reuses the start and release)
__all__ = ["GroupOutcome", "InstanceOutcome", "RunRules", "Worker", "WorkerFailed", "WorkerPool",
           "WorkerRequest", "close_workers", "release_workers", "run_group", "start_workers"]


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
