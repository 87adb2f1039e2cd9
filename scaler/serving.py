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
run whose generator fell behind is marked invalid. The coordinator's clock (``monotonic``)
schedules and issues; a completion is the worker's own end of inference when the worker
shares that clock (same boot: local workers, SSH to this machine), else the coordinator's
time of receipt (VMs, remote hosts). ``scaler.serve_io`` holds the fast path: binary frames,
the arrival ticker thread, each turn of the event loop issuing every request due. One
instance at batch 1 is sent its queries as they arrive (its pipe is its queue: the order
and the start of each query are the shared FIFO's), so no round trip sits between two.
A run that ends before its requests are done (its rate failed) stops every worker within
about a query however far over capacity it offered: unsent queries and those a worker has
not started are dropped and counted (``generator``: ``unsent_at_end``, ``at_stop``).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scaler import serve_io
from scaler.coordinator import (
    GroupOutcome,
    InstanceOutcome,
    RunRules,
    Worker,
    WorkerFailed,
    WorkerPool,
    release_workers,
    speed_edge,
    start_workers,
)
from scaler.noise import WindowProbe
from scaler.targets import Target, WorkerRequest
from scaler.worker import protocol

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
            edges = outcome.speed_probe.setdefault("edges", [])
            if probe is not None:  # the speed probe: the workers idle on both edges
                edges.append(await speed_edge(probe.cpus))
            await _serve([w for w in workers if w is not None], outcome, rules, rate_qps,
                         count, seed, policy, on_event, probe)
            if probe is not None:
                edges.append(await speed_edge(probe.cpus))
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

    from scaler.stoprule import allowed_over

    n = len(workers)
    clock = time.monotonic_ns
    schedule = poisson_schedule(rate_qps, count, seed)
    issued = np.full(count, np.nan)
    done = np.full(count, np.nan)
    served_by = np.full(count, -1, dtype=np.int64)
    outcome.service_s = [[] for _ in range(n)]
    queue = _Queue(n, policy)
    allowed = allowed_over(rules)  # None: no bound to fail
    bound_s = (rules.latency_bound_ms or 0.0) / 1000.0
    slowest = max(float(i.ready.get("warmup_last_query_s", 0)) for i in outcome.instances)
    drain_s = max(5.0, 10.0 * bound_s, 3.0 * slowest)
    stop_s = max(10.0, 3.0 * slowest)  # a worker's stop: the query it runs, then it reads
    shared = [serve_io.shares_clock(i.ready) for i in outcome.instances]
    links = [serve_io.Link(w) for w in workers]
    state = {"over": 0, "issued": 0}
    wake = asyncio.Event()
    ended = asyncio.Event()
    generated = asyncio.Event()
    for w, same_clock in zip(workers, shared):
        w.send("serve", each=not same_clock)
    # one instance at batch 1 takes the queue in order whatever it is sent early: its
    # queries go to it as they arrive (its pipe holds them), no round trip between two
    pipelined = n == 1 and policy.max_batch == 1
    loop = asyncio.get_running_loop()
    t0_ns = clock() + 50_000_000  # a moment to get every task going
    schedule_ns = t0_ns + np.round(schedule * 1e9).astype(np.int64)
    due_ns = schedule_ns.tolist()  # cheap scalar reads for "is anything due"
    if probe is not None:
        probe.begin(w.proc.pid for w in workers)
    on_event("measuring", min_duration_s=float(schedule[-1]) if count else 0.0,
             min_queries=count)

    def dispatch(now_ns: int, ending: bool) -> None:
        if pipelined:
            waiting, qid = queue.waiting, queue.next_query
            if not waiting:
                return
            frames = [protocol.query_frame(qid + j, 1) for j in range(len(waiting))]
            for j, r in enumerate(waiting):
                queue.in_flight[qid + j] = [r]
            served_by[list(waiting)] = 0
            queue.next_query += len(waiting)
            waiting.clear()
            links[0].send(b"".join(frames))
            return
        while queue.idle and queue.waiting:
            oldest = queue.waiting[0]
            batch = queue.take((now_ns - t0_ns) / 1e9 - schedule[oldest], ending)
            if batch is None:
                if policy.batch_timeout_s > 0:  # a partial batch is due at the timeout
                    due_ns = int(schedule_ns[oldest]) + int(policy.batch_timeout_s * 1e9)
                    loop.call_later(max(due_ns - clock(), 0) / 1e9, wake.set)
                return
            k = queue.idle.pop(0)
            qid = queue.next_query
            queue.next_query += 1
            queue.in_flight[qid] = batch
            served_by[batch] = k
            links[k].send(protocol.query_frame(qid, len(batch)))

    def issue() -> None:
        """Issue every request due by now (one turn of the loop, one batch), then serve."""
        now_ns = clock()
        ending = generated.is_set()
        first = state["issued"]
        if first < count and due_ns[first] <= now_ns:
            upto = bisect.bisect_right(due_ns, now_ns, first)
            issued[first:upto] = (now_ns - t0_ns) / 1e9
            queue.waiting.extend(range(first, upto))
            state["issued"] = upto
            if upto == count:
                generated.set()
        dispatch(now_ns, ending)

    async def receive(k: int, link: serve_io.Link) -> None:
        service = outcome.service_s[k]
        while True:
            try:
                items = await link.items()
            except WorkerFailed as exc:
                outcome.instances[k].status = "failed"
                outcome.instances[k].error = str(exc)
                ended.set()
                return
            got_ns = clock()
            for item in items:
                if type(item) is not tuple or item[0] != "D":
                    continue
                _, qid, a_ns, b_ns = item
                t = ((b_ns if shared[k] else got_ns) - t0_ns) / 1e9
                batch = queue.in_flight.pop(qid)
                done[batch] = t
                if bound_s > 0:
                    state["over"] += int(np.count_nonzero(t - schedule[batch] > bound_s)) \
                        if len(batch) > 1 else int(t - schedule[batch[0]] > bound_s)
                service.append((b_ns - a_ns) / 1e9)
                if not pipelined:
                    queue.idle.append(k)
            if allowed is not None and state["over"] > allowed:
                outcome.bound_failed = True
                ended.set()
                return
            if generated.is_set() and not queue.waiting and not queue.in_flight:
                ended.set()
                return
            if not direct and (queue.waiting or (state["issued"] < count
                                                 and due_ns[state["issued"]] <= clock())):
                issue()

    async def batch_timer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            issue()

    def end_of_arrivals() -> None:  # the ticker issued the last request itself
        generated.set()
        if not queue.in_flight:
            ended.set()

    def issue_direct(now_ns: int) -> int:
        """The ticker thread's issue for one pipelined instance: every request due, each
        its own query, written to the worker at once; the index of the first not due."""
        first = state["issued"]
        upto = bisect.bisect_right(due_ns, now_ns, first)
        if upto > first:
            issued[first:upto] = (now_ns - t0_ns) / 1e9
            served_by[first:upto] = 0
            qid = queue.next_query
            for j in range(upto - first):
                queue.in_flight[qid + j] = [first + j]
            queue.next_query = qid + upto - first
            state["issued"] = upto
            assert writer is not None
            writer.write(b"".join([protocol.query_frame(qid + j, 1)
                                   for j in range(upto - first)]))
            if upto == count:
                loop.call_soon_threadsafe(end_of_arrivals)
        return upto

    writer = serve_io.PipeWriter.of(workers[0].proc.stdin, protocol.QUERY.size) \
        if pipelined else None
    direct = writer is not None
    ticker = serve_io.Ticker(schedule_ns, loop, issue, issue_direct if direct else None,
                             writer)
    tasks = [asyncio.ensure_future(batch_timer()),
             *(asyncio.ensure_future(receive(k, link)) for k, link in enumerate(links))]
    ticker.start()
    try:
        last_ns = int(schedule_ns[-1]) if count else t0_ns
        await _until_done(ended, loop.time() + (last_ns - clock()) / 1e9 + drain_s, outcome)
    finally:
        ticker.halted = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if probe is not None:
            outcome.noise = probe.end()
        outcome.scheduled_s, outcome.issued_s = schedule, issued
        outcome.done_s, outcome.served_by = done, served_by
        outcome.generator = generator_accuracy(schedule, issued, rate_qps, bound_s)
        outcome.generator.update(ticker_wakes=ticker.wakes, issued_by=(
                                     "ticker thread" if direct else "event loop"),
                                 completion_clock=["worker" if s else "coordinator"
                                                   for s in shared])
    whole = await serve_io.halt(ticker, links, stop_s)  # its last issues now counted too
    outcome.generator.update(generator_accuracy(schedule, issued, rate_qps, bound_s),
                             unsent_at_end=writer.dropped if writer else 0)
    await _stop(links, outcome, stop_s, whole)


async def _until_done(ended: asyncio.Event, deadline: float, outcome: ServeOutcome) -> None:
    """Wait until every request is done or until ``deadline`` (loop time: the drain time
    after the last arrival; a rate far over capacity never drains: that is its answer)."""
    try:
        async with asyncio.timeout_at(deadline):
            await ended.wait()
    except TimeoutError:
        outcome.drain_timed_out = True


async def _stop(links: list[serve_io.Link], outcome: ServeOutcome, within_s: float,
                whole: bool) -> None:
    """Tell every live worker to stop serving and wait for its ``served``: it drops the
    queries it has not started (what each ran and dropped is kept in ``generator`` under
    ``at_stop``), so this takes about a query. A worker whose input ends in half a frame
    (``whole`` false: it read nothing for ``within_s``) cannot read a ``stop``: failed."""
    said: list[dict[str, Any] | None] = [None] * len(links)
    outcome.generator["at_stop"] = said
    for k, (link, inst) in enumerate(zip(links, outcome.instances)):
        if link.failed or (k == 0 and not whole):
            if inst.status == "ready":
                inst.status, inst.error = "failed", link.failed or (
                    f"did not read its queries for {within_s:g} s: it cannot be stopped")
        elif inst.status == "ready" and link.worker.proc.returncode is None:
            link.worker.send("stop")

    async def served(k: int, link: serve_io.Link, inst: InstanceOutcome) -> None:
        if inst.status != "ready":
            return
        wait_s = max(within_s, 3 * max((max(s, default=0.0) for s in outcome.service_s),
                                       default=0.0))
        try:
            async with asyncio.timeout(wait_s):
                while not said[k]:
                    for i in await link.items():
                        if type(i) is dict and i["type"] == "served":
                            said[k] = {"queries": i.get("queries"), "dropped": i.get("dropped")}
            inst.status = "complete"
        except TimeoutError:
            inst.status, inst.error = "failed", f"did not stop serving within {wait_s:g} s"
        except WorkerFailed as exc:
            inst.status, inst.error = "failed", f"did not stop serving: {exc}"

    await asyncio.gather(*(served(k, link, i)
                           for k, (link, i) in enumerate(zip(links, outcome.instances))))


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
