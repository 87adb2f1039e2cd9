"""A flooded open-loop probe ends as a failed rate, never as a failed run: the generator
stops issuing, the workers drop what they have not started, and every instance stops
(``serving._stop``, ``serve_io.halt``, ``worker.serve``). Decided on counts, with the null
engine's fixed service time: nothing here depends on how fast the machine is."""

from __future__ import annotations

import numpy as np
import pytest
import uvloop

from scaler.coordinator import RunRules
from scaler.serving import ServePolicy, serve_group
from scaler.targets import WorkerRequest
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import run_async

pytestmark = pytest.mark.serial  # serves real workers on the CPUs: one such test at a time


def flood(n: int, service_s: float, rate: float, count: int, bound_ms: float):
    reqs = [WorkerRequest(k, WorkerSpec(engine="null", instance=k, warmup_s=0,
                                        service_s=service_s, cpus=(k % 2,), threads=1),
                          {"cpus": [k % 2], "nodes": [0]}) for k in range(n)]
    rules = RunRules(min_duration_s=0, min_queries=count, warmup_s=0, ready_timeout_s=60,
                     stall_timeout_s=30, latency_bound_ms=bound_ms, bound_percentile=0.99)
    return run_async(uvloop.new_event_loop, serve_group(
        reqs, rules, LocalTarget(), rate, count, seed=5, policy=ServePolicy()), 120)


@pytest.mark.parametrize("n", [1, 2])
def test_a_flooded_probe_stops_after_the_queries_in_flight(n):
    """4,000 requests of a fixed 2 ms offered at 200,000/s (all due within about 20 ms: 8 s
    of work for one instance) under a 10 ms p99 bound: the rate fails early, every worker
    stops (none 'did not stop serving'), and the backlog is never worked through: far less
    than half of it ran (working through it takes 2 ms a query whatever the CPU)."""
    outcome = flood(n, 0.002, 200_000.0, 4000, bound_ms=10.0)
    assert outcome.complete, outcome.errors
    assert outcome.bound_failed and not outcome.drain_timed_out
    ran, dropped = stopped_as_told(outcome, n)
    if n == 1:  # its queries went to its pipe: most were dropped, unstarted or unsent
        assert dropped + outcome.generator["unsent_at_end"] > 2000
    else:  # the event loop gives each idle instance one query: the queue stays with it
        assert dropped <= n
    assert ran < 2000


def test_a_flood_of_instant_queries_stops():
    """The reported case: null queries that take no time, offered far beyond what any
    generator issues (10 million a second, 100,000 requests, 5 ms bound), to one instance
    whose queries go straight to its pipe. However the race between the generator, the
    pipes and the worker goes on this machine, the probe ends with its worker stopped and
    every request it issued accounted for."""
    outcome = flood(1, 0.0, 10_000_000.0, 100_000, bound_ms=5.0)
    assert outcome.complete, outcome.errors
    stopped_as_told(outcome, 1)


def stopped_as_told(outcome, n: int) -> tuple[int, int]:
    """Every worker said ``served``: what it ran and dropped; one pipelined instance ran or
    dropped every request issued, except those the generator never wrote. Completions
    after the end are not counted. Returns (ran, dropped) over the workers."""
    at_stop = outcome.generator["at_stop"]
    assert len(at_stop) == n and all(a is not None for a in at_stop)
    ran = sum(a["queries"] for a in at_stop)
    dropped = sum(a["dropped"] for a in at_stop)
    issued = int(np.count_nonzero(~np.isnan(outcome.issued_s)))
    if n == 1:
        assert ran + dropped + outcome.generator["unsent_at_end"] == issued
    assert int(np.count_nonzero(~np.isnan(outcome.done_s))) <= ran
    return ran, dropped
