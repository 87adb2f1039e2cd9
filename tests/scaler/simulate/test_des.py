"""The simulator obeys basic laws: no throughput above the ideal linear line, Little's law on
its queues, more cores never slow a pinned layout, and the closed loop matches the model's
closed form."""

from __future__ import annotations

import pytest

from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine
from scaler.simulate.model import Observation, _predicted_ips, static_features
from scaler.simulate.sweep import simulate_closed, simulate_open


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
