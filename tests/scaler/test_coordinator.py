"""The coordinator with real worker processes (null engine: no model, fast start)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
import uvloop

from scaler.coordinator import RunRules, WorkerPool, WorkerRequest, run_group
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import alive, run_async

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

RULES = RunRules(min_duration_s=0.5, min_queries=10, warmup_s=0.05, ready_timeout_s=60,
                 stall_timeout_s=20)


def null_requests(n: int, **extra) -> list[WorkerRequest]:
    spec = WorkerSpec(engine="null", warmup_s=0.05, max_queries=20000)
    return [WorkerRequest(k, spec.replace(instance=k, **extra), None) for k in range(n)]


def test_group_of_two_runs_together_and_returns_samples(loop_factory):
    events = []
    outcome = run_async(loop_factory, run_group(
        null_requests(2), RULES, LocalTarget(), lambda kind, **d: events.append((kind, d))))
    assert outcome.complete, outcome.errors
    kinds = [k for k, _ in events]
    assert kinds.count("ready") == 2 and "measuring" in kinds
    for inst in outcome.instances:
        assert inst.ready["engine"]["engine"] == "null"
        assert len(inst.start_ns) == len(inst.end_ns) > 10
        assert all(e >= s for s, e in zip(inst.start_ns, inst.end_ns))
        assert not alive(inst.ready["pid"])


@pytest.mark.parametrize("min_duration_s, min_queries", [(0.3, 5), (0.0, 60)])
def test_run_lasts_min_duration_and_min_queries(min_duration_s, min_queries):
    """The null engine at a fixed 2 ms a query (a TF worker cost 4-5 s of import for the
    same rule): 0.3 s is 150 queries, far over 5 (the duration decides); 60 queries are
    0.12 s (the count decides)."""
    rules = RunRules(min_duration_s=min_duration_s, min_queries=min_queries, ready_timeout_s=120)
    reqs = [WorkerRequest(0, WorkerSpec(engine="null", service_s=0.002, warmup_s=0), None)]
    outcome = run_async(uvloop.new_event_loop, run_group(reqs, rules, LocalTarget()))
    assert outcome.complete, outcome.errors
    inst = outcome.instances[0]
    # the window lasts from its recorded start (the scheduled common start: the first query
    # can begin a little after it, 0.13 ms once on a loaded machine), not from the first query
    start_ns = outcome.window["start_ns"]
    assert start_ns is not None and start_ns <= inst.start_ns[0]
    assert (inst.end_ns[-1] - start_ns) / 1e9 >= min_duration_s
    assert len(inst.start_ns) >= min_queries


def test_worker_killed_mid_run_keeps_siblings_data(loop_factory):
    pids = {}

    def on_event(kind, **data):
        if kind == "ready":
            pids[data["instance"]] = data["pid"]
        if kind == "progress" and alive(pids[1]):
            os.kill(pids[1], signal.SIGKILL)

    rules = RunRules(min_duration_s=5, min_queries=1, warmup_s=0, ready_timeout_s=60)
    outcome = run_async(loop_factory, run_group(null_requests(2, max_queries=10000000,
                                                              progress_s=0.01),
                                                rules, LocalTarget(), on_event))
    assert not outcome.complete
    good, dead = outcome.instances
    assert dead.status == "failed" and "exited" in dead.error
    assert good.status == "complete" and len(good.start_ns) > 0
    assert not any(alive(p) for p in pids.values())


def test_worker_that_never_becomes_ready_hits_the_deadline(loop_factory):
    # (its close then waits out the 2 s grace: a loading worker does not read "exit")
    rules = RunRules(min_duration_s=0.5, min_queries=1, ready_timeout_s=0.5)
    # a warm-up far longer than the ready deadline: the worker is alive but never ready
    reqs = [WorkerRequest(0, WorkerSpec(engine="null", warmup_s=600), None)]
    pids = []
    outcome = run_async(loop_factory, run_group(reqs, rules, LocalTarget(),
                                                lambda kind, **d: pids.append(d.get("pid"))))
    inst = outcome.instances[0]
    assert inst.status == "failed" and "not ready within 0.5 s" in inst.error
    assert outcome.wall_s < 15


def test_worker_error_is_reported_with_its_message(loop_factory):
    reqs = [WorkerRequest(0, WorkerSpec(engine="tf", model="/no/such/model.keras"), None)]
    outcome = run_async(loop_factory, run_group(reqs, RULES, LocalTarget()))
    inst = outcome.instances[0]
    assert inst.status == "failed"
    assert "/no/such/model.keras" in inst.error


def test_cancellation_keeps_samples_and_ends_workers(loop_factory):
    """On asyncio with TF workers (a real engine's workers end too), on uvloop with null
    workers at a fixed 2 ms a query (the loop is what differs: TF's import cost 4-5 s)."""
    pids = []
    if loop_factory is asyncio.new_event_loop:
        spec = WorkerSpec(engine="tf", model="tiny", threads=1)
    else:
        spec = WorkerSpec(engine="null", service_s=0.002, threads=1)

    async def cancel_while_measuring():
        measuring = asyncio.Event()

        def on_event(kind, **d):
            if kind == "ready":
                pids.append(d["pid"])
            if kind == "progress":
                measuring.set()

        reqs = [WorkerRequest(k, spec.replace(instance=k), None) for k in range(2)]
        task = asyncio.ensure_future(run_group(
            reqs, RunRules(min_duration_s=60, min_queries=1, warmup_s=0), LocalTarget(),
            on_event))
        await asyncio.wait_for(measuring.wait(), 60)
        task.cancel()
        return await task

    outcome = run_async(loop_factory, cancel_while_measuring())
    assert outcome.interrupted and not outcome.complete
    assert all(i.status == "complete" and len(i.start_ns) > 0 for i in outcome.instances)
    # both instances ran in one window: each started before the other stopped
    a, b = outcome.instances
    assert a.start_ns[0] < b.end_ns[-1] and b.start_ns[0] < a.end_ns[-1]
    assert len(pids) == 2 and not any(alive(p) for p in pids)


def test_pinned_worker_reports_its_binding(loop_factory):
    reqs = [WorkerRequest(0, WorkerSpec(engine="null", cpus=(0,), nodes=(0,), threads=1),
                          {"cpus": [0], "nodes": [0]})]
    outcome = run_async(loop_factory, run_group(reqs, RULES, LocalTarget()))
    binding = outcome.instances[0].ready["binding"]
    assert binding["cpus"] == [0]
    assert outcome.instances[0].ready["threads"] == 1
    assert sys.platform == "linux"


def test_pool_reuses_a_warm_worker_for_the_same_instance_and_closes_the_rest(loop_factory):
    pool = WorkerPool()

    async def two_groups():
        first = await run_group(null_requests(2), RULES, target, pool=pool)
        second = await run_group(null_requests(1), RULES, target, pool=pool)
        await pool.close()
        return first, second

    target = LocalTarget()
    first, second = run_async(loop_factory, two_groups())
    assert first.complete and second.complete, (first.errors, second.errors)
    pids = [i.ready["pid"] for i in first.instances]
    assert second.instances[0].ready["pid"] == pids[0]
    assert second.instances[0].ready["reused"] is True
    assert len(second.instances[0].start_ns) > 0
    assert not any(alive(p) for p in pids)
