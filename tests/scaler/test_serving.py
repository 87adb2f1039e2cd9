"""The open-loop load generator with real workers: the arrival process, latency that counts
queueing, and a generator that falls behind its schedule marking the run invalid."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import numpy as np
import pytest
import uvloop
from scipy import stats

from scaler.coordinator import RunRules
from scaler.serving import ServePolicy, poisson_schedule, serve_group
from scaler.targets import WorkerRequest
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import run_async
from tests.scaler.test_plugins import PLUGIN

RULES = RunRules(min_duration_s=0.0, min_queries=1, warmup_s=0.05, ready_timeout_s=60,
                 stall_timeout_s=20)


def test_arrivals_are_poisson_at_the_target_rate_and_reproducible():
    schedule = poisson_schedule(250.0, 200_000, seed=7)
    gaps = np.diff(np.concatenate([[0.0], schedule]))
    assert len(schedule) / schedule[-1] == pytest.approx(250.0, rel=0.01)
    assert gaps.mean() == pytest.approx(1 / 250.0, rel=0.01)
    assert gaps.std() == pytest.approx(1 / 250.0, rel=0.02)  # exponential: sd = mean
    # the gaps are exponential: Kolmogorov-Smirnov against the exponential of that mean
    assert stats.kstest(gaps, "expon", args=(0, 1 / 250.0)).pvalue > 0.01
    assert np.array_equal(schedule, poisson_schedule(250.0, 200_000, seed=7))
    assert not np.array_equal(schedule[:100], poisson_schedule(250.0, 100, seed=8))


def serve(rate, count, engine="sleepy", n=1, policy=None):
    policy = policy or ServePolicy()
    target = LocalTarget(env={**os.environ, **PLUGIN})
    reqs = [WorkerRequest(k, WorkerSpec(engine=engine, model="tiny", instance=k, warmup_s=0.05,
                                        batch=policy.max_batch), None) for k in range(n)]
    return run_async(uvloop.new_event_loop, serve_group(reqs, RULES, target, rate, count,
                                                        seed=1, policy=policy), 120)


def p99_ms(outcome):
    latency = (outcome.done_s - outcome.scheduled_s) * 1000.0
    return float(np.percentile(latency[~np.isnan(latency)], 99))


@pytest.mark.long
def test_latency_includes_queueing_and_grows_with_the_run_above_capacity():
    """The sleepy engine serves one request in 2 ms: at most ~500/s. At 800/s the queue grows
    by ~300 requests a second, so a run four times as long sees a much larger p99 (seconds of
    queue, not the 2 ms service); below capacity (200/s) the p99 stays far under that."""
    short, long_ = serve(800.0, 400), serve(800.0, 1600)
    assert short.complete and long_.complete, (short.errors, long_.errors)
    assert np.isnan(long_.done_s).sum() == 0
    assert p99_ms(long_) > 2.5 * p99_ms(short)
    assert p99_ms(long_) > 500.0
    calm = serve(200.0, 400)
    assert p99_ms(calm) < p99_ms(long_) / 5
    service = np.concatenate([np.asarray(s) for s in calm.service_s])
    assert np.median(service) == pytest.approx(0.002, abs=0.0015)


def hold_the_interpreter(seconds: float) -> None:
    """Run Python for ``seconds`` without letting another thread of this process run (no
    thread switch is asked for within them), as a stalled coordinator does."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(10 * seconds)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("n", [1, 2])
def test_a_stalled_generator_marks_the_run_invalid(n):
    """The coordinator stalls for 0.5 s in the middle of a 4 s schedule (as a busy machine
    can do to it): neither the event loop nor the arrival ticker runs meanwhile (one
    instance: the ticker issues itself; two: the event loop issues), so the requests due
    meanwhile are issued late, the lag is measured, and the run is not valid. Their latency
    still counts from the schedule."""
    async def stalled():
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, hold_the_interpreter, 0.5)
        target = LocalTarget(env={**os.environ, **PLUGIN})
        reqs = [WorkerRequest(k, WorkerSpec(engine="sleepy", model="tiny", instance=k,
                                            warmup_s=0.05), None) for k in range(n)]
        return await serve_group(reqs, RULES, target, 100.0, 400, seed=3,
                                 policy=ServePolicy())

    outcome = run_async(uvloop.new_event_loop, stalled(), 120)
    assert outcome.generator["issued_by"] == ("ticker thread" if n == 1 else "event loop")
    assert outcome.generator["kept_up"] is False
    assert outcome.generator["lag_ms"]["p99"] > 100.0
    assert p99_ms(outcome) > 100.0  # the stall shows in latency from the schedule


def test_dynamic_batching_sends_up_to_max_batch_requests_per_query():
    policy = ServePolicy(batch=1, max_batch=4, batch_timeout_s=0.005)
    outcome = serve(1500.0, 600, policy=policy)  # sleepy: 8 ms per batch of 4 -> 500/s max
    assert outcome.complete, outcome.errors
    queries = sum(len(s) for s in outcome.service_s)
    assert queries < 600 * 0.6  # requests travelled several to a query
