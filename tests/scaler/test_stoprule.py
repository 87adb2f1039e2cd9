"""The stop rule: a window ends within one query per instance or 10 ms of queries (whichever
is more) of the moment its rules are met, whatever the query's length.

Real worker processes run the null engine with a fixed service time (10 µs to 1 s): what a
window should record is known from the rules and the samples alone, on any CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import uvloop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scaler.coordinator import RunRules, WorkerRequest, run_group
from scaler.records import rule_warnings
from scaler.stoprule import LATE_NS, Watch, effective_start, window_record
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import run_async

SLACK_NS = 10_000_000  # the rule's 10 ms


def run_window(n: int, service_s: float, min_queries: int, min_duration_s: float):
    reqs = [WorkerRequest(k, WorkerSpec(engine="null", instance=k, warmup_s=0,
                                        service_s=service_s, cpus=(k % 2,), threads=1),
                          {"cpus": [k % 2], "nodes": [0]}) for k in range(n)]
    rules = RunRules(min_duration_s=min_duration_s, min_queries=min_queries, warmup_s=0,
                     ready_timeout_s=60, stall_timeout_s=30)
    return rules, run_async(uvloop.new_event_loop, run_group(reqs, rules, LocalTarget()))


def check_bound(outcome, rules) -> dict:
    """The rules held, and no instance ran more than its query in flight or 10 ms of
    queries past the moment they were first met (read from the samples)."""
    assert outcome.complete, outcome.errors
    starts = [np.frombuffer(i.start_ns, dtype=np.int64) for i in outcome.instances]
    ends = [np.frombuffer(i.end_ns, dtype=np.int64) for i in outcome.instances]
    window = outcome.window
    assert window["stopped_by"] == "rules_met" and window["common_start"]
    at = window["start_ns"]
    assert all(len(s) and s[0] >= at for s in starts)  # nobody began before the common start
    # the window starts when the last instance began (a busy machine may wake one late)
    w0 = max(effective_start(t, at) for t in window["started_ns"])
    q = rules.min_queries
    all_ends = np.sort(np.concatenate(ends))
    met = max(w0 + int(rules.min_duration_s * 1e9), int(all_ends[q - 1]) if q else 0)
    record = window_record(window, starts, ends)
    assert record["recorded_queries"] == all_ends.size >= q
    assert record["instance_duration_s"] >= rules.min_duration_s  # each instance's own
    if record["late_start_ms"] <= LATE_NS / 1e6:  # all began together: so did the window
        assert record["recorded_duration_s"] >= rules.min_duration_s
    for s in starts:
        after = s[s > met]  # queries begun after the rules were met
        assert after.size == 0 or after[-1] <= met + SLACK_NS, (after - met) / 1e6
    # the same in queries: at most one in flight per instance or 10 ms of queries each
    lengths = [max(float(np.median(e - s)), 1.0) for s, e in zip(starts, ends)]
    allowed = max(len(starts), sum(math.ceil(SLACK_NS / x) + 1 for x in lengths))
    assert int(np.count_nonzero(all_ends > met)) <= allowed
    assert not rule_warnings(outcome, rules)
    return record


@pytest.mark.long
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(service_s=st.floats(1e-5, 1.0).map(lambda x: float(f"{x:.2g}")),
       n=st.sampled_from([1, 2]), binding=st.sampled_from(["queries", "duration"]))
@example(service_s=1e-5, n=1, binding="queries")
@example(service_s=1e-5, n=2, binding="queries")
@example(service_s=1e-5, n=2, binding="duration")
@example(service_s=1.0, n=2, binding="queries")
def test_window_ends_within_the_bound(service_s, n, binding):
    """Closed loop, N=1 and N=2: count-bound windows (no minimum duration, about 50 ms of
    queries, at least one each) and duration-bound ones (50 ms, one query each)."""
    if binding == "queries":
        q, d = max(n, min(1000, round(0.05 / service_s) * n)), 0.0
    else:
        q, d = n, 0.05
    rules, outcome = run_window(n, service_s, q, d)
    record = check_bound(outcome, rules)
    if binding == "queries":  # each instance halts at its share: the count, exactly
        assert record["recorded_queries"] == q


def test_uneven_query_counts_sum_to_the_rule():
    """95 over two instances (48 + 47 as shares), a query of 1 ms: exactly 95 recorded."""
    rules, outcome = run_window(2, 1e-3, 95, 0.0)
    record = check_bound(outcome, rules)
    assert record["recorded_queries"] == 95
    assert sorted(len(i.start_ns) for i in outcome.instances) == [47, 48]


def test_limits_share_the_count_and_tighten_as_counts_arrive():
    """Unit: shares sum to min_queries; a worker's stop_at never exceeds what the group
    lacks; report_at lies half way; a worker past its share waits only for the clock."""
    rules = RunRules(min_duration_s=0, min_queries=95)
    watch = Watch(2, rules, 60.0, boot_ids=["a", "a"])  # one clock, not this machine's
    assert watch.at_ns is None and watch.shares == [48, 47]
    first = [watch.first_limits(k) for k in range(2)]
    assert [f["stop_at"] for f in first] == [48, 47] and first[0]["report_at"] == 24
    watch.heard_from(0, {"type": "reached", "queries": 90})
    assert watch.limits(1) == {"report_at": 2, "stop_at": 5, "until_ns": None}
    assert watch.limits(0)["stop_at"] == 48 and watch.limits(0)["report_at"] is None
    changed = dict(watch.changed_limits())
    assert set(changed) == {0, 1}
    watch.heard_from(0, {"type": "started", "t_ns": 100})
    watch.heard_from(1, {"type": "started", "t_ns": 250})
    assert watch.until_ns == [250, 250] and watch.window_open
    assert not watch.rules_met(watch.window_t0)
    watch.heard_from(1, {"type": "halted", "queries": 5})
    assert watch.rules_met(watch.window_t0)


def test_window_record_measures_from_the_window_start():
    window = {"requested_queries": 4, "requested_duration_s": 1.0, "stopped_by": "rules_met",
              "one_clock": True, "start_ns": 1_000, "started_ns": [1_000, 1_200]}
    starts = [np.array([1_000, 2_000]), np.array([1_200])]
    ends = [np.array([2_000, int(1.5e9)]), np.array([int(2e9)])]
    record = window_record(window, starts, ends)
    assert record["recorded_queries"] == 3 and record["late_start_ms"] == 0.0
    # 200 ns late is on time: both windows start at the common start
    assert record["recorded_duration_s"] == pytest.approx((1.5e9 - 1_000) / 1e9)
    assert record["instance_duration_s"] == pytest.approx((1.5e9 - 1_000) / 1e9)
    late = window_record({**window, "started_ns": [1_000, 1_000 + 5_000_000]}, starts, ends)
    assert late["late_start_ms"] == 5.0
    assert late["recorded_duration_s"] == pytest.approx((1.5e9 - 5_001_000) / 1e9)
    assert late["instance_duration_s"] == pytest.approx((1.5e9 - 1_000) / 1e9)
    apart = window_record({**window, "one_clock": False, "start_ns": None}, starts, ends)
    assert apart["recorded_duration_s"] == pytest.approx((1.5e9 - 1_000) / 1e9)
    assert "late_start_ms" not in apart


def serve_null(n: int, service_s: float, rate: float, count: int,
               bound_ms: float | None = None):
    from scaler.serving import ServePolicy, serve_group

    reqs = [WorkerRequest(k, WorkerSpec(engine="null", instance=k, warmup_s=0,
                                        service_s=service_s, cpus=(k % 2,), threads=1),
                          {"cpus": [k % 2], "nodes": [0]}) for k in range(n)]
    rules = RunRules(min_duration_s=0, min_queries=count, warmup_s=0, ready_timeout_s=60,
                     stall_timeout_s=30, latency_bound_ms=bound_ms,
                     bound_percentile=0.99 if bound_ms else None)
    return run_async(uvloop.new_event_loop, serve_group(
        reqs, rules, LocalTarget(), rate, count, seed=3, policy=ServePolicy()))


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(service_s=st.floats(1e-5, 0.05).map(lambda x: float(f"{x:.2g}")),
       n=st.sampled_from([1, 2]))
@example(service_s=1e-5, n=2)
@example(service_s=0.05, n=1)
def test_open_loop_serves_exactly_its_requests(service_s, n):
    """Open loop, under capacity: the run is its requests: every one served once, one query
    each, none run after the last (the generator issues no more than it scheduled)."""
    rate = min(1000.0, 0.5 * n / service_s)
    count = max(5, min(100, round(0.2 * rate)))
    outcome = serve_null(n, service_s, rate, count)
    assert outcome.complete, outcome.errors
    assert len(outcome.scheduled_s) == count
    assert int(np.count_nonzero(~np.isnan(outcome.done_s))) == count
    assert sorted(set(outcome.served_by.tolist())) <= list(range(n))
    assert sum(len(s) for s in outcome.service_s) == count  # one query a request, no more
    assert all(x >= service_s - 1e-9 for s in outcome.service_s for x in s)


def test_open_loop_that_fails_its_bound_stops_with_only_the_queries_in_flight():
    """5 ms queries offered at 1000/s (5x what one instance serves) with a 10 ms p99 bound:
    the run ends early, and no query runs past the stop: every query the instance ran is
    one it finished. (One instance at batch 1 is pipelined: requests handed to its pipe but
    not started when it stops are dropped, never run.)"""
    outcome = serve_null(1, 0.005, 1000.0, 400, bound_ms=10.0)
    assert outcome.bound_failed and outcome.complete, outcome.errors
    done = ~np.isnan(outcome.done_s)
    assert 0 < done.sum() < 400
    assert sum(len(s) for s in outcome.service_s) == int(done.sum())


def test_separate_clocks_move_the_window_start_into_each_workers_clock():
    """Unit: workers on different boots (VMs, hosts) get no common start; each gets the
    last start as heard, moved into its own clock, never earlier than it was."""
    rules = RunRules(min_duration_s=2.0, min_queries=10)
    watch = Watch(2, rules, 60.0, boot_ids=["vm-a", "vm-b"])
    assert watch.at_ns is None and not watch.one_clock
    assert watch.first_limits(0)["at_ns"] is None
    watch.heard_from(0, {"type": "started", "t_ns": 5_000})
    watch.heard_started_ns[0] = 1_000_000  # heard at 1 ms on the coordinator's clock
    watch.heard_from(1, {"type": "started", "t_ns": 900})
    watch.heard_started_ns[1] = 4_000_000  # the last start, heard 3 ms later
    watch._open_window()
    assert watch.until_ns == [5_000 + 3_000_000 + 2_000_000_000, 900 + 2_000_000_000]
    assert watch.window_end == pytest.approx(watch.window_t0 + 2.0)
