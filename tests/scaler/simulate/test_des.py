"""The simulator obeys basic laws: no throughput above the ideal linear line, Little's law on
its queues, more cores never slow a pinned layout, and the closed loop matches the model's
closed form. Its service-time draws: the closed loop's are stratified (each draw has the
shape's distribution, a run of them averages to the shape's mean), the queueing kernels' are
independent; checked on hand-made shapes whose draws are known without the code."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from scaler.simulate import des
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine
from scaler.simulate.model import Observation, _predicted_ips, static_features
from scaler.simulate.sweep import simulate_closed, simulate_open

from .conftest import make_model


@pytest.mark.parametrize("machine", ["1s2c1t", "2s8c2t"])
@pytest.mark.parametrize("placement", ["shared", "pinned", "vm"])
def test_never_above_the_ideal_linear_line(model, machine, placement):
    topo = parse_machine(machine)
    one = simulate_closed(model, plan_layout(topo, placement, 1), queries=20_000)
    for n in (2, 3, 5, 8, 17, 20):
        x = simulate_closed(model, plan_layout(topo, placement, n), queries=20_000, seed=n)
        assert x["throughput_ips"] <= n * one["throughput_ips"] * 1.01, n


def test_littles_law_closed_loop(model):
    for placement, n in (("pinned", 3), ("shared", 4), ("pinned", 20)):
        g = simulate_closed(model, plan_layout(parse_machine("2s8c2t"), placement, n),
                            queries=50_000)
        little = g["little"]
        assert little["mean_in_system"] == pytest.approx(n)
        assert little["mean_in_system"] == pytest.approx(
            little["throughput_per_ms"] * little["mean_latency_ms"], rel=0.01)


@pytest.mark.parametrize("batch,interval_ms", [(1, 60.0), (2, 120.0), (4, 250.0)])
def test_littles_law_open_loop_queues(model, batch, interval_ms):
    layout = plan_layout(parse_machine("1s4c1t"), "pinned", 3)
    g = simulate_open(model, layout, batch, interval_ms, queries=30_000, seed=batch)
    little = g["little"]
    assert g["stable"]
    assert little["mean_in_system"] == pytest.approx(
        little["arrival_rate_per_ms"] * little["mean_latency_ms"], rel=0.02)
    assert g["throughput_ips"] == pytest.approx(3 * batch * 1000 / interval_ms, rel=0.02)


def test_open_loop_reports_a_backlog_when_overloaded(model):
    layout = plan_layout(parse_machine("1s2c1t"), "pinned", 2)
    g = simulate_open(model, layout, 8, 50.0, queries=2_000)
    assert not g["stable"]


def test_more_cores_never_slow_a_pinned_layout(model):
    machine = parse_machine("1s16c1t")
    single = [simulate_closed(model, plan_layout(machine, "pinned", 1, cores_per_instance=k),
                              queries=10_000)["throughput_ips"] for k in range(1, 17)]
    assert all(b >= a * 0.999 for a, b in zip(single, single[1:])), single
    four = [simulate_closed(model, plan_layout(parse_machine(f"1s{c}c1t"), "pinned", 4),
                            queries=20_000)["throughput_ips"] for c in range(4, 17)]
    assert all(b >= a * 0.995 for a, b in zip(four, four[1:])), four


def test_closed_loop_matches_the_closed_form(model):
    for placement, n in (("shared", 3), ("pinned", 5), ("pinned", 12)):
        layout = plan_layout(parse_machine("2s4c2t"), placement, n)
        obs = Observation("r", {"batch": 1, "placement": placement}, layout,
                          *static_features(layout))
        g = simulate_closed(model, layout, queries=100_000)
        assert g["throughput_ips"] == pytest.approx(_predicted_ips(obs, model.values), rel=0.01)


# Hand-made shapes (service time over its mean at evenly spaced probabilities, interpolated
# linearly). HEAVY: 0.5 with probability 0.99, else uniform on (0.5, 100.5): mean 0.99 x 0.5
# + 0.01 x 50.5 = 1; variance 0.99 x 0.25 + 0.01 x (100^2/12 + 50.5^2) - 1 = 33.1, so the
# mean of 20,000 independent draws has a standard deviation of sqrt(33.1 / 20,000) = 4.1%.
HEAVY = np.array([0.5] * 100 + [100.5])
# STEP: uniform on (0, 1) below probability 0.5, on (1, 3) above: F(x) = x / 2 on [0, 1],
# 1/2 + (x - 1) / 4 on [1, 3].
STEP = np.array([0.0, 1.0, 3.0])


def step_cdf(x):
    return np.where(x < 1.0, x / 2.0, 0.5 + (x - 1.0) / 4.0)


def textbook(n: int = 1):
    """``n`` one-core instances that never slow each other, 1 ms of work a query: the
    kernel's slowdown is 1, so each latency is the draw itself."""
    m = make_model(t1_ms=1.0, serial_fraction=1.0, memory_contention=0.0, slice_cost=0.0,
                   sync_cost=0.0)
    layout = plan_layout(parse_machine(f"1s{n}c1t"), "pinned", n)
    return m, layout


def closed_draws(shape, warm: int, queries: int, seed: int, n: int = 1):
    """The closed loop's service times of its window's queries (draws #warm on at N=1)."""
    m, layout = textbook(n)
    work, extra, vm = m.instance_arrays(layout, 1)
    assert work.tolist() == [1.0] * n and extra.tolist() == [0.0] * n
    done, t0, t1, lat, _ = des.run_closed(*layout.arrays(), m.params(), vm, work, extra,
                                          shape, warm, queries, seed)
    return lat, (t1 - t0) / (queries / n)


def test_closed_loop_means_stay_near_the_shape_mean_on_a_heavy_tail():
    """20,000 queries of the heavy two-valued shape, 400 of warm-up (as ``simulate_closed``
    takes), 40 seeds: every window's mean draw within 3% of 1, where independent draws
    (standard deviation 4.1%) miss 3% in about half of the windows (checked below with
    NumPy's draws from the same table). At N=2 each instance's stream is stratified: the
    window's time per query per instance is the mean draw, within 3% too."""
    means = [closed_draws(HEAVY, 400, 20_000, seed)[0].mean() for seed in range(40)]
    assert max(abs(x - 1.0) for x in means) < 0.03, means
    rng = np.random.default_rng(0)
    plain = [np.interp(rng.random(20_000) * 100, np.arange(101), HEAVY).mean()
             for _ in range(40)]
    assert sum(abs(x - 1.0) >= 0.03 for x in plain) >= 10, plain
    pair = [closed_draws(HEAVY, 400, 20_000, seed, n=2)[1] for seed in range(20)]
    assert max(abs(x - 1.0) for x in pair) < 0.03, pair


def test_every_block_of_strata_covers_the_heavy_tail_exactly():
    """Draws #1000 to #20,999 of one instance are 20 whole blocks of 1,000 strata: each
    block has exactly 10 draws from the tail (above 0.5), one in each tenth of (0.5, 100.5),
    and 990 of exactly 0.5; inside its tenth, a tail draw is uniform."""
    assert des.STRATA == 1000
    lat, _ = closed_draws(HEAVY, 1000, 20_000, 3)
    inside = []
    for block in lat.reshape(20, 1000):
        tail = np.sort(block[block > 0.5])
        assert tail.size == 10 and np.all(block[block <= 0.5] == 0.5)
        assert np.array_equal(np.floor((tail - 0.5) / 10.0), np.arange(10.0)), tail
        inside.extend((tail - 0.5) % 10.0)
    assert sps.kstest(inside, "uniform", args=(0.0, 10.0)).pvalue > 1e-3


def test_each_draw_has_the_shapes_distribution():
    """The marginal of each draw is the shape's: draw #k over 300 seeds, for k at the start,
    the end and across a block boundary, follows the STEP shape's distribution
    (Kolmogorov-Smirnov); over one window of 100,000 draws the quantiles are the shape's
    (stratified: within 0.2% of probability at every decile)."""
    lat = np.array([closed_draws(STEP, 0, 1002, seed)[0] for seed in range(300)])
    for k in (0, 1, 998, 999, 1000, 1001):
        assert sps.kstest(lat[:, k], step_cdf).pvalue > 1e-3, k
    window, _ = closed_draws(STEP, 2000, 100_000, 9)
    probs = np.linspace(0.1, 0.9, 9)
    assert np.allclose(step_cdf(np.quantile(window, probs)), probs, atol=0.002)


def test_same_seed_same_draws():
    a, _ = closed_draws(HEAVY, 100, 5000, 11, n=2)
    b, _ = closed_draws(HEAVY, 100, 5000, 11, n=2)
    c, _ = closed_draws(HEAVY, 100, 5000, 12, n=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_open_loop_draws_independently():
    """A queue must see independent service times (blocks of strata would even out the
    work and shorten its waits, ``run_closed``): one instance whose queries arrive every
    101 ms never queues on HEAVY (1 ms x at most 100.5), so its latencies are its draws;
    20 blocks of 1,000 do not all hold exactly 10 tail draws (independent draws: 10 in a
    block with probability 0.125), though 20,000 draws hold about 200."""
    m, layout = textbook(1)
    work, extra, vm = m.instance_arrays(layout, 1)
    _, lat, _, _, left = des.run_open(*layout.arrays(), m.params(), vm, work, extra, HEAVY,
                                      101.0, np.zeros(1), 0.0, 101.0 * 20_000, 4)
    assert left <= 1 and lat.size >= 20_000 - 1
    counts = [(block > 0.5).sum() for block in lat[:20_000 - 1000].reshape(19, 1000)]
    assert 140 <= sum(counts) <= 260 and len(set(counts)) > 1, counts
