"""The server scenario's decisions in this process, from hand-made inputs (``scaler.serving``):
which requests an idle instance takes from the shared queue, whether the generator kept up
with its schedule, the arrival schedule itself, and when a backlog that never drains marks
the run. No worker, no timing: every expected value below is worked out by hand."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from scaler.serving import (
    ServeOutcome,
    ServePolicy,
    _Queue,
    _until_done,
    generator_accuracy,
    poisson_schedule,
)


def queue(waiting: int, idle: int = 1, **policy) -> _Queue:
    q = _Queue(idle, ServePolicy(**policy))
    q.waiting.extend(range(waiting))
    return q


def test_a_new_queue_has_every_instance_idle_and_nothing_waiting():
    """Three instances start idle in index order (the first idle one takes the next query),
    with nothing waiting or in flight and query ids from 0."""
    policy = ServePolicy(batch=2, max_batch=4, batch_timeout_s=0.01)
    q = _Queue(3, policy)
    assert q.idle == [0, 1, 2] and list(q.waiting) == [] and q.in_flight == {}
    assert q.next_query == 0 and q.policy is policy
    assert ServePolicy() == ServePolicy(batch=1, max_batch=1, batch_timeout_s=0.0)


def test_nothing_is_taken_without_an_idle_instance_or_a_waiting_request():
    """No idle instance, or no waiting request: None, and the queue is left as it was."""
    busy = queue(3, idle=0)
    assert busy.take(1.0, ending=True) is None and list(busy.waiting) == [0, 1, 2]
    assert queue(0, idle=2).take(1.0, ending=True) is None


def test_batch_one_takes_the_oldest_request_alone():
    """At batch 1 (the default policy) an idle instance takes one request, the oldest."""
    q = queue(3)
    assert q.take(0.0, ending=False) == [0]
    assert list(q.waiting) == [1, 2]


def test_a_full_batch_is_taken_at_once_and_never_more_than_max_batch():
    """max_batch 4: exactly 4 waiting go as one query at once, whatever the timeout; with 6
    waiting the 4 oldest go and 2 stay, in arrival order."""
    exactly = queue(4, batch=4, max_batch=4, batch_timeout_s=1.0)
    assert exactly.take(0.0, ending=False) == [0, 1, 2, 3] and not exactly.waiting
    more = queue(6, batch=2, max_batch=4, batch_timeout_s=1.0)
    assert more.take(0.0, ending=False) == [0, 1, 2, 3]
    assert list(more.waiting) == [4, 5]


def test_without_a_timeout_a_partial_batch_goes_once_it_reaches_batch():
    """batch 2, max_batch 4, no timeout: 2 or 3 waiting go at once (a partial batch, padded
    by the worker); 1 waiting waits however long it has waited, unless the run is ending."""
    assert queue(2, batch=2, max_batch=4).take(0.0, ending=False) == [0, 1]
    assert queue(3, batch=2, max_batch=4).take(0.0, ending=False) == [0, 1, 2]
    assert queue(1, batch=2, max_batch=4).take(5.0, ending=False) is None
    assert queue(1, batch=2, max_batch=4).take(0.0, ending=True) == [0]


def test_with_a_timeout_a_partial_batch_waits_until_the_oldest_has_waited_it():
    """batch 2, max_batch 4, timeout 5 ms: 2 waiting for 4 ms wait on (the batch may still
    fill); at 5 ms exactly, or later, they go, and so does a lone request (below batch);
    a lone request at 4 ms waits; the run's end sends whatever waits."""
    policy = {"batch": 2, "max_batch": 4, "batch_timeout_s": 0.005}
    assert queue(2, **policy).take(0.004, ending=False) is None
    assert queue(2, **policy).take(0.005, ending=False) == [0, 1]
    assert queue(2, **policy).take(0.009, ending=False) == [0, 1]
    assert queue(1, **policy).take(0.004, ending=False) is None
    assert queue(1, **policy).take(0.005, ending=False) == [0]
    assert queue(1, **policy).take(0.0, ending=True) == [0]


def test_requests_are_taken_oldest_first_batch_after_batch():
    """Seven requests, max_batch 3, two takes: 0-2 then 3-5, request 6 left waiting."""
    q = queue(7, idle=2, batch=3, max_batch=3)
    assert q.take(0.0, ending=False) == [0, 1, 2]
    assert q.take(0.0, ending=False) == [3, 4, 5]
    assert list(q.waiting) == [6]


def test_generator_accuracy_by_hand():
    """Scheduled at 0, 1, 2, 3 s; issued 1, 2 and 4 ms late and one never: 3 of 4 issued, lag
    p50 2 ms, p99 2 + 0.98 x (4 - 2) = 3.96 ms (linear interpolation), max 4 ms; under the
    10 ms floor (no bound): kept up."""
    schedule = np.array([0.0, 1.0, 2.0, 3.0])
    issued = np.array([0.001, 1.002, np.nan, 3.004])
    out = generator_accuracy(schedule, issued, 100.0)
    assert out["issued"] == 3 and out["scheduled"] == 4
    assert out["lag_limit_ms"] == pytest.approx(10.0)
    assert out["lag_ms"]["p50"] == pytest.approx(2.0)
    assert out["lag_ms"]["p99"] == pytest.approx(3.96)
    assert out["lag_ms"]["max"] == pytest.approx(4.0)
    assert out["kept_up"] is True
    assert set(out) == {"issued", "scheduled", "lag_limit_ms", "lag_ms", "kept_up"}
    assert type(out["issued"]) is int and type(out["scheduled"]) is int


def test_a_lag_p99_at_the_limit_keeps_up_and_over_it_does_not():
    """Every request 10 ms late: p99 = 10 ms = the limit, kept up (the limit is inclusive);
    11 ms late: not kept up."""
    schedule = np.zeros(5)
    assert generator_accuracy(schedule, schedule + 0.010, 50.0)["kept_up"] is True
    late = generator_accuracy(schedule, schedule + 0.011, 50.0)
    assert late["kept_up"] is False and late["lag_ms"]["p99"] == pytest.approx(11.0)


def test_the_lag_limit_is_a_tenth_of_a_large_bound_and_10_ms_under_a_small_one():
    """A 200 ms bound allows 20 ms of lag (15 ms late keeps up); a 50 ms bound allows the
    10 ms floor, not 5 ms (15 ms late does not keep up)."""
    schedule = np.zeros(3)
    wide = generator_accuracy(schedule, schedule + 0.015, 10.0, bound_s=0.2)
    assert wide["lag_limit_ms"] == pytest.approx(20.0) and wide["kept_up"] is True
    narrow = generator_accuracy(schedule, schedule + 0.015, 10.0, bound_s=0.05)
    assert narrow["lag_limit_ms"] == pytest.approx(10.0) and narrow["kept_up"] is False


def test_a_generator_that_issued_nothing_did_not_keep_up():
    """Nothing issued of 2 scheduled: 0 issued, no lag figures, not kept up."""
    out = generator_accuracy(np.array([0.0, 0.5]), np.array([np.nan, np.nan]), 4.0)
    assert out == {"issued": 0, "scheduled": 2, "lag_limit_ms": pytest.approx(10.0),
                   "kept_up": False}


def test_the_schedule_is_poisson_at_the_rate_and_reproducible_by_seed():
    """20,000 arrivals at 400/s: increasing, mean gap 1/400 s (2.5 ms, +-3%: the standard
    error is 0.7%), standard deviation equal to the mean (exponential gaps), the same seed
    gives the same schedule and another seed another."""
    schedule = poisson_schedule(400.0, 20_000, seed=3)
    gaps = np.diff(np.concatenate([[0.0], schedule]))
    assert len(schedule) == 20_000 and (gaps > 0).all()
    assert gaps.mean() == pytest.approx(0.0025, rel=0.03)
    assert gaps.std() == pytest.approx(0.0025, rel=0.05)
    assert np.array_equal(schedule, poisson_schedule(400.0, 20_000, seed=3))
    assert not np.array_equal(schedule[:50], poisson_schedule(400.0, 50, seed=4))


def _until(ended_first: bool, after_s: float) -> ServeOutcome:
    async def main() -> ServeOutcome:
        outcome, ended = ServeOutcome([]), asyncio.Event()
        if ended_first:
            ended.set()
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(_until_done(ended, loop.time() + after_s, outcome), 2.0)
        return outcome

    return asyncio.run(main())


def test_a_backlog_that_does_not_drain_by_the_deadline_is_marked():
    """Every request done (the event set): not timed out, even with the deadline passed; the
    event never set and the deadline 10 ms away: drain timed out (within the 2 s guard)."""
    assert _until(True, 0.0).drain_timed_out is False
    assert _until(True, 0.5).drain_timed_out is False
    assert _until(False, 0.01).drain_timed_out is True
