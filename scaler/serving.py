"""The open-loop load generator of the server scenario (MLPerf LoadGen's Server, on a layout).

Requests arrive on their own schedule: exponential gaps at ``target_qps`` over all instances
(a Poisson process, reproducible with a seed). They wait in ONE shared FIFO queue, and an idle
instance takes the oldest (with ``max_batch`` > 1, up to that many within ``batch_timeout``):
that is how an inference server's request queue feeds its model instances, and it lets each
layout serve at its best, so layouts are compared on where they run rather than on how work
is dealt to them (per-instance queues with random dealing have a longer tail at the same
load). LoadGen's Server issues to a single system under test for the same reason.

A request's latency counts from its *scheduled* arrival, not from when it was issued or
dispatched, so a generator that falls behind cannot hide queueing (coordinated omission).
The generator's own accuracy is measured (the lag between scheduled and actual issue) and a
run whose generator fell behind is marked invalid. The coordinator's clock times everything:
the same clock for local workers, VMs and remote hosts.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler.coordinator import (
    GroupOutcome,
    InstanceOutcome,
    RunRules,
    Worker,
    WorkerFailed,
    WorkerPool,
    release_workers,
    start_workers,
)
from scaler.noise import WindowProbe
from scaler.targets import Target, WorkerRequest

# the generator fell behind when its lag p99 exceeds the larger of these: 10 ms, or 10% of the
# latency bound. Below that it is scheduler jitter, which cannot hide queueing (latency counts
# from the schedule) and cannot change a verdict; above it the offered load was not the one
# asked for (LoadGen's issue thread has the same duty).
LAG_LIMIT_S = 0.010
LAG_SHARE_OF_BOUND = 0.10


def poisson_schedule(rate_qps: float, count: int, seed: int) -> Any:
    """Arrival times in seconds from 0: cumulative exponential gaps of mean 1/rate."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1.0 / rate_qps, count))


@dataclass(frozen=True)
class ServePolicy:
    """How requests become queries: ``batch`` requests at least (a partial batch after
    ``batch_timeout_s``), ``max_batch`` at most; the worker's engine runs ``max_batch``."""

    batch: int = 1
    max_batch: int = 1
    batch_timeout_s: float = 0.0


@dataclass
class ServeOutcome(GroupOutcome):
    """A served group: per request its scheduled arrival, issue and completion times (s from
    the schedule's start), the instance that served it (-1: never served), and per query
    the worker's own service time."""

    target_qps: float = 0.0
    scheduled_s: Any = None
    issued_s: Any = None
    done_s: Any = None
    served_by: Any = None
    service_s: list[list[float]] = field(default_factory=list)  # per instance
    generator: dict[str, Any] = field(default_factory=dict)
    drain_timed_out: bool = False


class _Queue:
    """The shared request queue and the instances' states."""

    def __init__(self, n: int, policy: ServePolicy) -> None:
        self.waiting: collections.deque[int] = collections.deque()
        self.idle: list[int] = list(range(n))
        self.in_flight: dict[int, list[int]] = {}  # query id -> requests
        self.policy = policy
        self.next_query = 0

    def take(self, oldest_waited_s: float, ending: bool) -> list[int] | None:
        """Requests for an idle instance now, or None (wait for more, or for the timer)."""
        if not self.idle or not self.waiting:
            return None
        p, queued = self.policy, len(self.waiting)
        timed_out = p.batch_timeout_s > 0 and oldest_waited_s >= p.batch_timeout_s
        if queued >= p.max_batch:
            take = p.max_batch
        elif (queued >= p.batch and (p.batch_timeout_s == 0 or timed_out)) or timed_out \
                or ending:
            take = queued  # a partial batch: the worker pads it to its engine's batch
        else:
            return None
        return [self.waiting.popleft() for _ in range(take)]


async def serve_group(requests: list[WorkerRequest], rules: RunRules, target: Target,
                      rate_qps: float, count: int, seed: int, policy: ServePolicy,
                      on_event: Callable[..., None] = lambda *a, **k: None,
                      pool: WorkerPool | None = None, probe: WindowProbe | None = None
                      ) -> ServeOutcome:
    """Serve ``count`` requests arriving at ``rate_qps`` with the group's workers.

    Ends when every request is done, or earlier once more requests are over the latency
    bound than its percentile allows at ``count`` (``rules.latency_bound_ms``: the rate
    fails), or when the backlog has not drained ``rules.stall_timeout_s`` after the last
    arrival. Every worker is gone (or back in the pool) when it returns.
    """
    began = time.monotonic()
    outcome = ServeOutcome([InstanceOutcome(r.index, r.partition) for r in requests],
                           target_qps=rate_qps)
    workers: list[Worker | None] = []
    try:
        await start_workers(requests, target, workers, outcome, rules, on_event, pool)
        if all(i.status == "ready" for i in outcome.instances):
            live = [w for w in workers if w is not None]
            await _serve(live, outcome, rules, rate_qps, count, seed, policy, on_event, probe)
    except asyncio.CancelledError:
        outcome.interrupted = True
        on_event("interrupted")
    finally:
        if probe is not None and not outcome.noise:
            outcome.noise = probe.end()
        try:
            await release_workers(workers, outcome, pool, target)
        finally:
            outcome.wall_s = time.monotonic() - began
    return outcome


async def _serve(workers: list[Worker], outcome: ServeOutcome, rules: RunRules,
                 rate_qps: float, count: int, seed: int, policy: ServePolicy,
                 on_event: Callable[..., None], probe: WindowProbe | None) -> None:
    import numpy as np

    from scaler.coordinator import _allowed_over

    n = len(workers)
    schedule = poisson_schedule(rate_qps, count, seed)
    issued = np.full(count, np.nan)
    done = np.full(count, np.nan)
    served_by = np.full(count, -1, dtype=np.int64)
    outcome.service_s = [[] for _ in range(n)]
    queue = _Queue(n, policy)
    allowed = _allowed_over(rules)  # None: no bound to fail
    bound_s = (rules.latency_bound_ms or 0.0) / 1000.0
    slowest = max(float(i.ready.get("warmup_last_query_s", 0)) for i in outcome.instances)
    drain_s = max(5.0, 10.0 * bound_s, 3.0 * slowest)
    over = 0
    wake = asyncio.Event()
    ended = asyncio.Event()
    failure: list[str] = []
    for w in workers:
        w.send("serve")
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05  # a moment to get every task going
    if probe is not None:
        probe.begin(w.proc.pid for w in workers)
    on_event("measuring", min_duration_s=float(schedule[-1]) if count else 0.0,
             min_queries=count)

    def now() -> float:
        return loop.time() - t0

    def dispatch(ending: bool = False) -> None:
        while queue.idle and queue.waiting:
            oldest = queue.waiting[0]
            batch = queue.take(now() - schedule[oldest], ending)
            if batch is None:
                if policy.batch_timeout_s > 0:  # a partial batch is due at the timeout
                    loop.call_at(t0 + schedule[oldest] + policy.batch_timeout_s, wake.set)
                return
            k = queue.idle.pop(0)
            qid = queue.next_query
            queue.next_query += 1
            queue.in_flight[qid] = batch
            for r in batch:
                served_by[r] = k
            workers[k].send("query", id=qid, n=len(batch))

    async def generate() -> None:
        for r in range(count):
            delay = t0 + schedule[r] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule's next arrival: a timer, not a poll
            issued[r] = now()
            queue.waiting.append(r)
            dispatch()
        generated.set()

    async def receive(k: int, w: Worker) -> None:
        nonlocal over
        while True:
            try:
                message = await w.recv()
            except WorkerFailed as exc:
                outcome.instances[k].status = "failed"
                outcome.instances[k].error = str(exc)
                failure.append(str(exc))
                ended.set()
                return
            if message["type"] != "done":
                continue
            t = now()
            batch = queue.in_flight.pop(int(message["id"]))
            for r in batch:
                done[r] = t
                if t - schedule[r] > bound_s > 0:
                    over += 1
            outcome.service_s[k].append((int(message["t1"]) - int(message["t0"])) / 1e9)
            queue.idle.append(k)
            if allowed is not None and over > allowed:
                outcome.bound_failed = True
                ended.set()
                return
            if generated.is_set() and not queue.waiting and not queue.in_flight:
                ended.set()
                return
            dispatch(ending=generated.is_set())

    async def batch_timer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            dispatch(ending=generated.is_set())

    generated = asyncio.Event()
    tasks = [asyncio.ensure_future(generate()), asyncio.ensure_future(batch_timer()),
             *(asyncio.ensure_future(receive(k, w)) for k, w in enumerate(workers))]
    try:
        await _until_done(ended, schedule, drain_s, outcome, loop, t0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if probe is not None:
            outcome.noise = probe.end()
        outcome.scheduled_s, outcome.issued_s = schedule, issued
        outcome.done_s, outcome.served_by = done, served_by
        outcome.generator = generator_accuracy(schedule, issued, rate_qps, bound_s)
    await _stop(workers, outcome, failure)


async def _until_done(ended: asyncio.Event, schedule: Any, drain_s: float,
                      outcome: ServeOutcome, loop: Any, t0: float) -> None:
    """Wait until every request is done or the run must end; the backlog gets ``drain_s``
    after the last arrival (a rate far over capacity never drains: that is its answer)."""
    last = t0 + (float(schedule[-1]) if len(schedule) else 0.0)
    try:
        async with asyncio.timeout_at(last + drain_s):
            await ended.wait()
    except TimeoutError:
        outcome.drain_timed_out = True


async def _stop(workers: list[Worker], outcome: ServeOutcome, failure: list[str]) -> None:
    """Tell every live worker to stop serving and wait for its ``served``."""
    for w, inst in zip(workers, outcome.instances):
        if inst.status == "ready" and w.proc.returncode is None:
            w.send("stop")

    async def served(w: Worker, inst: InstanceOutcome) -> None:
        if inst.status != "ready":
            return
        try:
            async with asyncio.timeout(max(10.0, 3 * max(
                    (max(s, default=0.0) for s in outcome.service_s), default=0.0))):
                while (await w.recv())["type"] != "served":
                    pass
            inst.status = "complete"
        except (TimeoutError, WorkerFailed) as exc:
            inst.status, inst.error = "failed", f"did not stop serving: {exc}"

    await asyncio.gather(*(served(w, i) for w, i in zip(workers, outcome.instances)))


def generator_accuracy(schedule: Any, issued: Any, rate_qps: float,
                       bound_s: float = 0.0) -> dict[str, Any]:
    """The lag between scheduled and actual issue times, and whether the generator kept up:
    lag p99 under the larger of ``LAG_LIMIT_S`` and ``LAG_SHARE_OF_BOUND`` of the bound."""
    import numpy as np

    got = ~np.isnan(issued)
    lag = (issued[got] - schedule[got]) * 1000.0
    limit_ms = max(LAG_LIMIT_S, LAG_SHARE_OF_BOUND * bound_s) * 1000.0
    out: dict[str, Any] = {"issued": int(got.sum()), "scheduled": int(len(schedule)),
                           "lag_limit_ms": limit_ms}
    if lag.size:
        out.update(lag_ms={"p50": float(np.percentile(lag, 50)),
                           "p99": float(np.percentile(lag, 99)), "max": float(lag.max())})
    out["kept_up"] = bool(lag.size and out["lag_ms"]["p99"] <= limit_ms)
    return out
