"""Capacity at its edges: values at a boundary, the exact refusal of each bad headroom, the
small formatters; hand-written documents (test_capacity.py's), answers worked by hand."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.simulate.capacity import decision, parse_headroom, plan_capacity
from scaler.simulate.capacity_text import _estimate_text, _ms, _oversub_text, _pct
from tests.scaler.simulate.test_capacity import group, run
from tests.scaler.simulate.test_capacity_server import point, server_run


@pytest.mark.parametrize("text, message", [
    ("150%", "--headroom 150%: must lie in [0%, 100%)"),
    ("1", "--headroom 1: must lie in [0%, 100%)"),
    ("1.5", "--headroom 1.5: give a share such as 20% or 0.2 (did you mean 1.5%?)"),
    ("2.5", "--headroom 2.5: give a share such as 20% or 0.2 (did you mean 2.5%?)"),
    ("x%", "--headroom 'x%': give a share such as 20% or 0.2"),
])
def test_each_bad_headroom_is_refused_in_its_words(text, message):
    with pytest.raises(UsageError) as raised:
        parse_headroom(text)
    assert str(raised.value) == message


def test_small_targets_and_bounds_are_fine(tmp_path):
    r = run(tmp_path, [group(0, "pinned", 1, 50.0, 0.8, cpus_each=1)])
    (c,) = plan_capacity([r], 0.5, 0.9)["cohorts"]
    assert c["recommendation"]["servers"] == 1


def test_formatters_at_their_boundaries():
    assert (_ms(None), _ms(0.5), _ms(1.0), _ms(1.5)) == ("-", "0.500", "1.00", "1.50")
    assert (_pct(None), _pct(0.01), _pct(0.005), _pct(0.5)) == ("-", "1%", "0.5%", "50%")
    assert _oversub_text({"oversubscribed": True, "oversubscription": None}) == (
        "OVERSUBSCRIBED: time-sliced")
    assert _oversub_text({"oversubscribed": False}) == "not oversubscribed"
    assert _estimate_text("p90") == ("conservative p90 (LoadGen early stopping, 99% "
                                     "confidence: at least 64 queries; simulated runs: the "
                                     "plain percentile)")
    assert _estimate_text("p99.9") == ("plain p99.9 over at least 6636 queries (no "
                                       "conservative estimate for p99.9)")


def test_an_undecided_conservative_estimate_says_so():
    thin = {"p99": 10.0, "samples": 95, "early_stopping": {"p99": None}}
    assert decision(thin, "p99", False) == (
        None, "conservative", "p99 from 95 queries: the conservative estimate needs 662")


def test_a_probe_at_the_bound_keeps_it_and_an_equal_search_bound_is_the_same(tmp_path):
    probes = [point(2, target=20.0, p99=10.0, probe=True),
              point(2, target=40.0, p99=50.0, probe=True)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["throughput_ips"] == 40.0


def test_left_out_points_of_every_run_are_kept(tmp_path):
    runs = [run(tmp_path, [group(0, "pinned", 1, 50.0, 20.0, cpus_each=1),
                           group(1, "vm", 2, 50.0, 20.0, emulated=True)], name)
            for name in ("a", "b")]
    answer = plan_capacity(runs, 100.0, 50.0)
    assert [x["run"] for x in answer["left_out"]] == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_an_equal_oversubscribed_or_undecided_layout_is_not_said_to_serve_more(tmp_path):
    groups = [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1),
              group(1, "pinned", 3, 100.0, 25.0, cpus_each=1, oversubscribed=True),
              group(2, "pinned", 1, 100.0, 20.0, cpus_each=1, samples=95)]
    (c,) = plan_capacity([run(tmp_path, groups, cores=2)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["instances"] == 2
    assert not any("serves more" in n or "cannot tell" in n for n in c["notes"])


def test_a_faster_held_back_layout_is_not_called_oversubscribed(tmp_path):
    groups = [group(0, "shared", 2, 300.0, 20.0, threading="model-zoo"),
              group(1, "pinned", 2, 100.0, 20.0, cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, groups)], 100.0, 50.0)["cohorts"]
    assert not any("serves more" in n for n in c["notes"])
    held = [group(0, "shared", 2, 300.0, 20.0, threading="model-zoo"),
            group(1, "pinned", 2, 100.0, 90.0, cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, held)], 100.0, 50.0)["cohorts"]
    assert c["status"] == "no layout keeps the bound"
    held_row = next(r for r in c["candidates"] if r["verdict"] == "not planned on")
    assert (held_row["servers"], held_row["utilisation"], held_row["headroom"]) == (
        1, pytest.approx(1 / 3), pytest.approx(2 / 3))


def test_a_noisy_recommendation_without_a_share_says_zero(tmp_path):
    pts = [point(2, ips=100.0, p99=20.0, noisy=True, ci95_ips=[90.0, 110.0])]
    r = run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=4)], points=pts)
    (c,) = plan_capacity([r], 100.0, 50.0)["cohorts"]
    assert "measured while other processes used 0% of its CPUs (noisy)" in c["notes"]


def test_a_row_without_a_planning_figure_has_no_servers(tmp_path):
    probes = [point(2, target=20.0, p99=90.0, probe=True)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    (row,) = c["candidates"]
    assert {k: row[k] for k in ("servers", "utilisation", "headroom")} == {
        "servers": None, "utilisation": None, "headroom": None}


def test_a_simulated_run_decides_on_the_plain_percentile(tmp_path):
    pts = [point(2, ips=100.0, p99=20.0)]  # plain p99 18 ms, conservative 20 ms
    r = run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=4)], points=pts,
            simulated=True)
    (c,) = plan_capacity([r], 100.0, 19.0)["cohorts"]
    best = c["recommendation"]
    assert (best["latency_ms"], best["latency_estimate"]) == (18.0, "simulated")


def test_a_stopped_probe_with_few_queries_misses_rather_than_cannot_decide(tmp_path):
    probes = [point(2, target=20.0, p99=90.0, probe=True, samples=100, bound_failed=True)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    (row,) = c["candidates"]
    assert (row["verdict"], row["undecided"]) == ("misses the bound", None)


def test_every_reason_a_run_was_left_out_is_named(tmp_path):
    runs = [run(tmp_path, [group(0, "pinned", 1, 5.0, 1.0, cpus_each=1)], name, engine="null")
            for name in ("a", "b")]
    with pytest.raises(UsageError) as raised:
        plan_capacity(runs, 100.0, 50.0)
    why = "null engine: it does no inference (it measures the harness itself)"
    assert str(raised.value) == (f"no run here can support a capacity answer ({tmp_path / 'a'}: "
                                 f"{why}; {tmp_path / 'b'}: {why})")
