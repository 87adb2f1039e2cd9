"""The simulated server (``scaler.simulate.serve``): arrivals, the shared queue, dynamic
batching, the peak search, against queueing theory and hand-worked event sequences.

Where the model reduces to a textbook queue (independent pinned instances, one per core, no
contention terms) the simulated latency is checked against the closed form: those tests
prove the event loop, not the instance model's calibration.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from scaler.scenarios.server import PeakSearch, next_rate
from scaler.serving import ServePolicy, _Queue
from scaler.simulate import serve
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine
from scaler.simulate.model import SHAPE_POINTS

from .conftest import make_model

SERVICE_MS = 10.0  # mu = 100 requests/s per instance


def textbook(shape: str = "constant"):
    """One-core instances that never slow each other: a query takes SERVICE_MS times a
    draw from ``shape`` (constant, or exponential of mean 1)."""
    m = make_model(t1_ms=SERVICE_MS, serial_fraction=1.0, memory_contention=0.0,
                   slice_cost=0.0, sync_cost=0.0)
    if shape == "constant":
        return replace(m, shape=(1.0,) * SHAPE_POINTS)
    u = np.linspace(0.0, 1.0 - 1e-7, 200_001)
    table = -np.log1p(-u)  # the exponential's quantile function, interpolated linearly
    table /= np.mean((table[1:] + table[:-1]) / 2)  # what _draw averages to
    return replace(m, shape=tuple(table))


def pinned(n: int):
    return plan_layout(parse_machine(f"1s{n}c1t"), "pinned", n)


def mean_latency(model, n: int, rate: float, queries: int, seed: int = 0) -> float:
    run = serve.Served(model, serve.ServeSettings(stat="mean", queries=queries, seed=seed))
    g = run.serve(pinned(n), rate)
    assert g["valid"] and g["requests"]["completed"] == queries
    return g["latency_ms"]["mean"]


def test_arrivals_are_poisson_at_the_rate_and_reproducible():
    """The requests of a simulated group arrive with exponential gaps of mean 1/rate
    (Kolmogorov-Smirnov against the exponential, mean within 3 standard errors), every
    request is served, and a fixed seed gives the same group again while the next
    repeat's seed gives another schedule."""
    rate, count = 40.0, 20_000
    settings = serve.ServeSettings(stat="mean", queries=count, seed=7)
    run = serve.Served(textbook(), settings)
    g = run.serve(pinned(2), rate)
    starts = np.sort(np.concatenate([run.arrays[f"g0_i{i}_start_ns"] for i in range(2)]))
    gaps_s = np.diff(starts) / 1e9
    assert g["requests"] == {"scheduled": count, "completed": count}
    assert abs(gaps_s.mean() - 1 / rate) < 3 * (1 / rate) / math.sqrt(gaps_s.size)
    assert sps.kstest(gaps_s, "expon", args=(0, 1 / rate)).pvalue > 1e-3
    assert g["achieved_qps"] == pytest.approx(rate, rel=0.03)
    again = serve.Served(textbook(), settings)
    g2 = again.serve(pinned(2), rate)
    assert g2["latency_ms"] == g["latency_ms"]
    assert np.array_equal(again.arrays["g0_i0_start_ns"], run.arrays["g0_i0_start_ns"])
    g3 = again.serve(pinned(2), rate, repeat=1)
    assert g3["seed"] == g["seed"] + 1 and g3["latency_ms"] != g["latency_ms"]


def test_md1_mean_latency_matches_the_pollaczek_khinchine_formula():
    """One instance with a constant 10 ms service at 80 requests/s is an M/D/1 queue:
    mean time in system 1/mu + rho/(2 mu (1 - rho)) = 30 ms (200k requests: within 5%)."""
    rho = 0.8
    expected = SERVICE_MS + rho * SERVICE_MS / (2 * (1 - rho))
    got = mean_latency(textbook(), 1, rho * 1000 / SERVICE_MS, 200_000)
    assert got == pytest.approx(expected, rel=0.05)


def test_mm1_latency_is_exponential_with_rate_mu_minus_lambda():
    """Exponential service at 50 of 100 requests/s is M/M/1: time in system is exponential
    with mean 1/(mu - lambda) = 20 ms, so its p99 is ln(100) x 20 ms."""
    run = serve.Served(textbook("exponential"), serve.ServeSettings(stat="mean",
                                                                    queries=200_000))
    g = run.serve(pinned(1), 50.0)
    assert g["latency_ms"]["mean"] == pytest.approx(20.0, rel=0.05)
    assert g["latency_ms"]["p99"] == pytest.approx(20.0 * math.log(100), rel=0.07)


def test_two_instances_share_one_queue_as_mm2():
    """Two exponential servers fed by one queue (M/M/2, Erlang C) at 150 of 200
    requests/s: mean time in system 1/mu + C/(2 mu - lambda) = 22.86 ms. Two separate
    queues with random dealing would be two M/M/1 at 75/s: 40 ms, so this tells the
    shared queue from per-instance ones."""
    lam, mu = 150.0, 100.0
    a, rho = lam / mu, lam / (2 * mu)
    erlang_c = (a * a / 2 / (1 - rho)) / (1 + a + a * a / 2 / (1 - rho))
    expected_ms = 1000.0 * (1 / mu + erlang_c / (2 * mu - lam))
    assert expected_ms == pytest.approx(22.857, abs=0.01)
    got = mean_latency(textbook("exponential"), 2, lam, 200_000)
    assert got == pytest.approx(expected_ms, rel=0.05)


def lindley_mean_ms(rate: float, count: int, seed: int) -> float:
    """Mean time in system of one constant-10-ms server fed the measured side's schedule
    (serving.poisson_schedule), by Lindley's recursion in plain Python: each request starts
    at the later of its arrival and the previous end."""
    from scaler.serving import poisson_schedule

    end, total = -math.inf, 0.0
    for a in poisson_schedule(rate, count, seed) * 1000.0:
        end = max(a, end) + SERVICE_MS
        total += end - a
    return total / count


def test_latency_grows_with_the_run_above_capacity():
    """At 1.2 times what one instance serves the backlog grows without end: the mean
    latency of a run four times longer is more than three times larger, and each equals
    Lindley's recursion on the same arrivals to 1e-6 ms (runs short enough to drain within
    the 5 s the measured side allows)."""
    lam = 1.2 * 1000 / SERVICE_MS
    short = mean_latency(textbook(), 1, lam, 300)
    long = mean_latency(textbook(), 1, lam, 1200)
    assert long > 3.0 * short
    assert short == pytest.approx(lindley_mean_ms(lam, 300, 0), abs=1e-6)
    assert long == pytest.approx(lindley_mean_ms(lam, 1200, 0), abs=1e-6)


def run_kernel(arrivals_ms, batch, max_batch, timeout_ms, n=1):
    """The kernel on a hand-made schedule with a constant 10 ms query (whatever its
    size): returns the queries' (instance, start, end, size)."""
    m = textbook()
    lay = pinned(n)
    work, extra, vm = m.instance_arrays(lay, max_batch)
    work[:] = SERVICE_MS  # a query of any size takes 10 ms (the padded engine batch)
    out = serve.run_serve(*lay.arrays(), m.params(), vm, work, extra, m.shape_array(),
                          np.asarray(arrivals_ms, float), batch, max_batch, timeout_ms, 0.0,
                          -1, 5000.0, 0)
    done, served_by, q_inst, q_start, q_end, q_size, failed, drain = out
    assert not failed and not drain and not np.isnan(done).any()
    return list(zip(q_inst.tolist(), q_start.tolist(), q_end.tolist(), q_size.tolist()))


def test_dynamic_batching_takes_what_is_queued_when_an_instance_frees():
    """batch 1, max batch 4, no timeout (hand-worked): the request at 0 ms starts alone;
    the three that arrive while it runs are taken together when it ends at 10 ms; the
    six arriving during that query leave as 4 then 2 (at most max batch)."""
    arrivals = [0, 1, 2, 3, 11, 12, 13, 14, 15, 16]
    assert run_kernel(arrivals, 1, 4, 0.0) == [
        (0, 0.0, 10.0, 1), (0, 10.0, 20.0, 3), (0, 20.0, 30.0, 4), (0, 30.0, 40.0, 2)]


def test_batch_timeout_sends_a_partial_batch():
    """batch 4, max 4, timeout 5 ms (hand-worked): three requests at 0, 1, 2 ms wait for
    the fourth until the oldest has waited 5 ms, then leave as a batch of 3; a full batch
    of 4 (at 20-23 ms) leaves at once; the last request leaves when every request has
    arrived and the instance frees (or at its timeout, whichever first)."""
    arrivals = [0, 1, 2, 20, 21, 22, 23, 40]
    assert run_kernel(arrivals, 4, 4, 5.0) == [
        (0, 5.0, 15.0, 3), (0, 23.0, 33.0, 4), (0, 45.0, 55.0, 1)]


def test_idle_instances_are_taken_first_idle_first():
    """Two instances, as serving._Queue keeps them (idle.pop(0), idle.append): the first
    request goes to instance 0, the second (0 busy) to 1; 0 went idle first (10 ms, 1 at
    11 ms) so it takes the one at 30 ms and rejoins the line behind 1, which takes the one
    at 60 ms although both are idle then."""
    assert [q[0] for q in run_kernel([0, 1, 30, 60], 1, 1, 0.0, n=2)] == [0, 1, 0, 1]


@pytest.mark.parametrize("queued,waited,ending,expected", [
    (1, 0.0, False, None), (3, 0.0, False, None), (4, 0.0, False, 4), (6, 0.0, False, 4),
    (2, 5.0, False, 2), (1, 0.0, True, 1)])
def test_the_kernel_takes_what_the_measured_queue_takes(queued, waited, ending, expected):
    """serving._Queue.take (batch 4, max 4, timeout 5 ms) and the kernel agree on how many
    requests an idle instance takes: the kernel is driven to the same state (requests
    queued at 0 ms, the instance freeing at ``waited`` ms; ``ending``: no more arrivals)
    and its first query's size compared."""
    free_at = max(waited, 0.5)  # when the instance frees (ms); the requests came at 0
    q = _Queue(1, ServePolicy(batch=4, max_batch=4, batch_timeout_s=0.005))
    q.waiting.extend(range(queued))
    took = q.take(free_at / 1000.0, ending)
    assert (None if took is None else len(took)) == expected
    # the kernel: a full batch (taken at once) occupies the instance until free_at, the
    # requests arrive at 0 ms meanwhile; a later arrival keeps the generator going
    later = [] if ending else [1000.0]
    arrivals = [free_at - SERVICE_MS] * 4 + [0.0] * queued + later
    queries = run_kernel(arrivals, 4, 4, 5.0)
    assert queries[0][1:] == (free_at - SERVICE_MS, free_at, 4)
    second = queries[1]
    if expected is None:  # nothing taken at the free instant: it waits (timer or arrival)
        assert second[1] > free_at
    else:
        assert second[1] == pytest.approx(free_at) and second[3] == expected


def test_peak_search_drives_the_measured_rule():
    """PeakSearch, driven by a verdict, probes exactly the rates of next_rate's loop (as
    the measured find_peak did before it was factored out)."""
    def loop(capacity):
        good, bad, out = 0.0, None, []
        while (rate := next_rate(good, bad, 10.0, 0.05, 10 / 64)):
            out.append(round(rate, 3))
            good, bad = (rate, bad) if rate < capacity else (good, rate)
        return out

    for capacity in (0.01, 3.3, 10.0, 57.1, 1000.0):
        s, got = PeakSearch(10.0, 0.05), []
        while (rate := s.next()) is not None:
            got.append(rate)
            s.record(rate < capacity)
        assert got == loop(capacity)


def test_simulated_peak_of_mm1_is_where_p99_meets_the_bound():
    """M/M/1 (mu = 100/s): the p99 of time in system is ln(100)/(mu - lambda), so with a
    200 ms bound the highest rate meeting it is 100 - ln(100)/0.2 = 76.97 requests/s. With
    long probes the early-stopping estimate is close to the true p99, so the searched peak
    lies within the search's precision below it, and the first failing rate above it."""
    true_peak = 1000 / SERVICE_MS - math.log(100) / 0.2
    settings = serve.ServeSettings(latency_bound_ms=200.0, stat="p99", queries=60_000,
                                   peak_precision=0.02, target_qps=40.0)
    found = serve.Served(textbook("exponential"), settings).find_peak(pinned(1))
    assert true_peak * 0.95 <= found["peak_qps"] <= true_peak * 1.01
    assert found["first_failing_qps"] >= true_peak * 0.97
    assert (found["first_failing_qps"] - found["peak_qps"]) / found["peak_qps"] <= 0.02
    assert [r for r, ok in found["probes"] if ok] and [r for r, ok in found["probes"]
                                                       if not ok]


def test_a_probe_over_the_bound_stops_early_like_the_measured_one():
    """Far above capacity with a bound: the probe ends once more requests are over the
    bound than p99 allows at its size (stoprule.allowed_over), marked bound_failed,
    with fewer requests completed than scheduled."""
    settings = serve.ServeSettings(latency_bound_ms=50.0, stat="p99", queries=2000)
    g = serve.Served(textbook(), settings).serve(pinned(1), 300.0)
    assert g["bound_failed"] and g["requests"]["completed"] < 2000
    over = settings.allowed_over(2000)
    assert 0 < over < 20


def test_a_backlog_that_does_not_drain_is_invalid():
    """Without a bound to stop it, a rate far over capacity leaves requests unserved when
    the drain time after the last arrival (5 s) runs out: invalid, as measured."""
    g = serve.Served(textbook(), serve.ServeSettings(stat="mean", queries=3000)).serve(
        pinned(1), 1000.0)
    assert g["drain_timed_out"] and not g["valid"]
    assert g["requests"]["completed"] < 3000
    assert "never served" in g["invalid_reasons"][0]


def replay_with_the_measured_queue(arrivals_ms, n, policy):
    """An independent event loop in plain Python around the measured side's own queue
    (``serving._Queue``) and dispatch loop (``serving._serve``'s), every query taking
    SERVICE_MS: per request its completion time and instance. Ties: completions first
    (lowest instance first), then arrivals, then timers, as the kernel orders them."""
    import heapq

    q = _Queue(n, policy)
    count = len(arrivals_ms)
    done, by = [math.nan] * count, [-1] * count
    events = [(a, 1, r) for r, a in enumerate(arrivals_ms)]
    heapq.heapify(events)
    in_flight: dict[int, list[int]] = {}
    generated = False

    def dispatch(t, ending):
        while q.idle and q.waiting:
            oldest = q.waiting[0]
            batch = q.take((t - arrivals_ms[oldest]) / 1000.0, ending)
            if batch is None:
                if policy.batch_timeout_s > 0:
                    due = arrivals_ms[oldest] + policy.batch_timeout_s * 1000.0
                    heapq.heappush(events, (due, 2, -1))
                return
            k = q.idle.pop(0)
            in_flight[k] = batch
            for r in batch:
                by[r] = k
            heapq.heappush(events, (t + SERVICE_MS, 0, k))

    while events:
        t, kind, x = heapq.heappop(events)
        if kind == 0:
            for r in in_flight.pop(x):
                done[r] = t
            q.idle.append(x)
            if generated and not q.waiting and not in_flight:
                break
            dispatch(t, generated)
        elif kind == 1:
            q.waiting.append(x)
            dispatch(t, False)
            generated = x == count - 1
        else:
            dispatch(t, generated)
    return done, by


@pytest.mark.parametrize("n,batch,max_batch,timeout_ms", [
    (1, 1, 1, 0.0), (3, 1, 1, 0.0), (1, 1, 4, 0.0), (2, 1, 8, 0.0), (1, 4, 4, 5.0),
    (3, 2, 8, 3.0), (2, 4, 4, 25.0)])
def test_the_kernel_serves_as_the_measured_queue_does(n, batch, max_batch, timeout_ms):
    """On random schedules (Poisson near and above capacity, on a 0.25 ms grid so that
    timer arithmetic is exact), the kernel and a plain-Python replay built on the measured
    queue's own ``_Queue.take`` serve every request at the same time on the same
    instance: the kernel mirrors the measured dispatch rules."""
    rng = np.random.default_rng(n * 100 + max_batch)
    for rate_per_ms in (0.5 * n / SERVICE_MS, 1.5 * n / SERVICE_MS):
        arrivals = np.round(np.cumsum(rng.exponential(1 / rate_per_ms, 400)) * 4) / 4
        m = textbook()
        lay = pinned(n)
        work, extra, vm = m.instance_arrays(lay, max_batch)
        work[:] = SERVICE_MS
        done, served_by, *_rest, failed, drain = serve.run_serve(
            *lay.arrays(), m.params(), vm, work, extra, m.shape_array(), arrivals, batch,
            max_batch, timeout_ms, 0.0, -1, 1e9, 0)
        assert not failed and not drain
        want_done, want_by = replay_with_the_measured_queue(
            arrivals.tolist(), n, ServePolicy(batch, max_batch, timeout_ms / 1000.0))
        assert served_by.tolist() == want_by
        assert np.allclose(done, want_done, rtol=0, atol=1e-9)
