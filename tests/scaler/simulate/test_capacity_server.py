"""Capacity from server runs (open loop), the cohort's notes and the printed answer.

Hand-written run documents with saved points: every expected figure and line is worked out
by hand from the figures chosen here (bound 50 ms at p99, conservative estimates given
directly), not by running the code under test.
"""

from __future__ import annotations

import pytest

from scaler.simulate.capacity import KIND_HELP, lines, plan_capacity
from tests.scaler.simulate.test_capacity import group, run

ENOUGH = 5000


def point(n, placement="pinned", ips=None, p99=10.0, samples=ENOUGH, target=None,
          gid=0, **extra):
    lat = {"p50": p99 / 2, "p99": p99 * 0.9, "samples": samples,
           "early_stopping": {"p50": p99 / 2, "p99": p99 if samples >= 662 else None}}
    out = {"placement": placement, "engine": "tf", "precision": "fp32", "model": "resnet50",
           "instances": n, "batch": 1, "groups": [gid], "repeats": 1, "complete": 1,
           "throughput_ips": ips if ips is not None else target, "latency_ms": lat, **extra}
    if target is not None:
        out = {"target_qps": target, "achieved_qps": target - 0.5, "valid": True, **out}
    return out


def server_run(tmp_path, points, name="s", bound=50.0, stat="p99", cores=8, **doc):
    groups = [group(0, "pinned", 2, 1.0, 1.0, cpus_each=4)]
    r = run(tmp_path, groups, name, cores=cores, scenario="server", points=points, **doc)
    r.doc["requested"].update(latency_bound_ms=bound, stat=stat)
    return r


def peak_probes(**extra):
    """A peak search of 2 x pinned: 20 and 40 requests/s keep p99 <= 50 ms, 60 does not;
    the first point is the closed-loop calibration (no offered rate)."""
    return [point(2, ips=55.0, p99=5.0),
            point(2, target=20.0, p99=10.0, probe=True, **extra),
            point(2, target=40.0, p99=30.0, probe=True, **extra),
            point(2, target=60.0, p99=80.0, probe=True, **extra)]


def test_a_peak_search_row_uses_the_highest_rate_that_kept_the_bound(tmp_path):
    answer = plan_capacity([server_run(tmp_path, peak_probes())], 100.0, 50.0)
    (c,) = answer["cohorts"]
    (row,) = c["candidates"]  # the calibration point is not a candidate
    assert row["kind"] == "server peak" and row["verdict"] == "recommended"
    assert (row["throughput_ips"], row["planning_ips"], row["achieved_ips"]) == (40.0, 40.0,
                                                                                 39.5)
    assert row["rates_tried"] == [20.0, 40.0, 60.0]
    assert (row["latency_ms"], row["latency_estimate"], row["samples"]) == (30.0,
                                                                            "conservative",
                                                                            ENOUGH)
    assert (row["run_bound_ms"], row["run_stat"], row["ci95_ips"]) == (50.0, "p99", None)
    assert row["meets_bound"] is True and row["undecided"] is None
    assert (row["cores_each"], row["unpinned"]) == (4, False)
    # 100 / (40 x 0.8) = 3.125 -> 4 servers at 100 / 160 = 62.5%
    assert (row["servers"], row["utilisation"], row["headroom"]) == (
        4, pytest.approx(0.625), pytest.approx(0.375))
    assert c["figures"] == ["server peak"] and c["status"] == "recommended"
    assert ("server peak: 40 requests/s is the highest of 3 offered rate(s) that kept p99 <= "
            "50 ms (the run searched for this bound)") in c["notes"]
    assert KIND_HELP["closed loop"] not in c["notes"]
    assert not any(n.startswith("one repeat") for n in c["notes"])


def test_a_tighter_capacity_bound_judges_the_probes_again(tmp_path):
    (c,) = plan_capacity([server_run(tmp_path, peak_probes())], 100.0, 20.0)["cohorts"]
    assert c["recommendation"]["throughput_ips"] == 20.0
    assert c["recommendation"]["latency_ms"] == 10.0
    assert ("server peak: 20 requests/s is the highest of 3 offered rate(s) that kept p99 <= "
            "20 ms; the run searched for p99 <= 50 ms") in c["notes"]


def test_a_looser_bound_than_the_run_searched_says_the_peak_is_at_least_this(tmp_path):
    (c,) = plan_capacity([server_run(tmp_path, peak_probes())], 100.0, 90.0)["cohorts"]
    assert c["recommendation"]["throughput_ips"] == 60.0
    assert ("server peak: 60 requests/s is the highest of 3 offered rate(s) that kept p99 <= "
            "90 ms; the run searched for p99 <= 50 ms, stopping rates over that early: for "
            "this looser bound the peak is at least this") in c["notes"]
    # another statistic: the run's search says nothing about this one's peak
    r = server_run(tmp_path, peak_probes(), stat="p90")
    (c,) = plan_capacity([r], 100.0, 90.0)["cohorts"]
    assert ("server peak: 60 requests/s is the highest of 3 offered rate(s) that kept p99 <= "
            "90 ms; the run searched for p90 <= 50 ms") in c["notes"]


def test_one_offered_rate_is_a_server_rate_whose_peak_may_be_higher(tmp_path):
    r = server_run(tmp_path, [point(2, target=30.0, p99=20.0)])
    (c,) = plan_capacity([r], 100.0, 50.0)["cohorts"]
    best = c["recommendation"]
    assert best["kind"] == "server rate" and best["throughput_ips"] == 30.0
    assert ("server rate: 30 requests/s is the highest of 1 offered rate(s) that kept p99 <= "
            "50 ms; the layout's peak may be higher (search it with --find-peak)") in c["notes"]


def test_invalid_and_stopped_probes_never_pass(tmp_path):
    probes = [point(2, target=20.0, p99=10.0, probe=True),
              point(2, target=40.0, p99=10.0, probe=True, valid=False),
              point(2, target=60.0, p99=10.0, probe=True, bound_failed=True)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["throughput_ips"] == 20.0


def test_no_rate_keeps_the_bound(tmp_path):
    probes = [point(2, target=20.0, p99=70.0, probe=True),
              point(2, target=40.0, p99=90.0, probe=True)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    (row,) = c["candidates"]
    assert c["recommendation"] is None and c["status"] == "no layout keeps the bound"
    assert row["verdict"] == "misses the bound" and row["no_rate_meets"] is True
    # the figures shown are the highest rate's
    assert (row["throughput_ips"], row["planning_ips"], row["servers"]) == (None, None, None)
    assert (row["latency_ms"], row["samples"], row["undecided"]) == (90.0, ENOUGH, None)
    assert row["meets_bound"] is False


def test_a_probe_with_too_few_queries_cannot_decide(tmp_path):
    probes = [point(2, target=20.0, p99=70.0, probe=True),
              point(2, target=40.0, p99=10.0, probe=True, samples=100),
              point(2, target=60.0, p99=10.0, probe=True, samples=200, valid=False)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    (row,) = c["candidates"]
    assert row["verdict"] == "cannot decide" and c["status"] == "cannot decide"
    assert row["undecided"] == "p99 from 100 queries: the conservative estimate needs 662"
    assert row["samples"] == 200 and row["latency_ms"] is None
    assert c["notes"] == ["cannot decide: no layout is shown to keep the bound, and 1 have "
                          "too few queries to tell (2 x pinned (4 cores each): p99 from 100 "
                          "queries: the conservative estimate needs 662)"]


def test_closed_loop_figures_are_reference_only_beside_server_figures(tmp_path):
    closed = run(tmp_path, [group(0, "pinned", 2, 500.0, 5.0, cpus_each=4)], "c")
    answer = plan_capacity([closed, server_run(tmp_path, peak_probes())], 100.0, 50.0)
    (c,) = answer["cohorts"]
    assert c["figures"] == ["closed loop", "server peak"]
    verdicts = [(r["kind"], r["verdict"]) for r in c["candidates"]]
    assert verdicts == [("server peak", "recommended"), ("closed loop", "reference only")]
    assert c["runs"] == sorted([str(tmp_path / "c"), str(tmp_path / "s")])


def test_a_closed_loop_recommendation_says_it_is_optimistic_and_has_one_repeat(tmp_path):
    (c,) = plan_capacity([run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=4)])],
                         100.0, 50.0)["cohorts"]
    assert c["notes"][:2] == [
        KIND_HELP["closed loop"],
        "one repeat: no interval on the throughput (--repeat 3 or more gives one; the plan "
        "then divides by its lower end)"]


def test_a_noisy_recommendation_says_how_much_others_used(tmp_path):
    pts = [point(2, ips=100.0, p99=20.0, noisy=True, others_cpu_share=0.07,
                 ci95_ips=[90.0, 110.0])]
    r = run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=4)], points=pts)
    (c,) = plan_capacity([r], 100.0, 50.0)["cohorts"]
    assert "measured while other processes used 7% of its CPUs (noisy)" in c["notes"]
    assert not any(n.startswith("one repeat") for n in c["notes"])
    assert c["recommendation"]["planning_ips"] == 90.0


def test_faster_oversubscribed_and_undecided_layouts_are_named_in_the_notes(tmp_path):
    groups = [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1),
              group(1, "pinned", 3, 120.0, 25.0, cpus_each=1, oversubscribed=True,
                    oversubscription=1.5),
              group(2, "pinned", 4, 130.0, 25.0, cpus_each=1, oversubscribed=True,
                    oversubscription=2.0),
              group(3, "pinned", 1, 150.0, 20.0, cpus_each=1, samples=95),
              group(4, "pinned", 5, 90.0, 20.0, cpus_each=1, samples=95)]
    (c,) = plan_capacity([run(tmp_path, groups, cores=2)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["instances"] == 2
    assert ("4 x pinned (1 core each) serves more (130.0 images/s) but is oversubscribed "
            "(time-sliced: its tail latency depends on the scheduler's quanta); "
            "--allow-oversubscribed lets it be recommended") in c["notes"]
    # the slower undecided layout (90 images/s) is not counted
    assert ("cannot tell whether 1 layout(s) with more throughput keep the bound: p99 from 95 "
            "queries: the conservative estimate needs 662 (1 x pinned (1 core each)); "
            "measure longer to decide") in c["notes"]
    order = [(r["instances"], r["verdict"]) for r in c["candidates"]]
    assert order == [(2, "recommended"), (4, "oversubscribed"), (3, "oversubscribed"),
                     (1, "cannot decide"), (5, "cannot decide")]


def test_only_oversubscribed_layouts_keep_the_bound(tmp_path):
    groups = [group(0, "pinned", 3, 120.0, 25.0, cpus_each=1, oversubscribed=True),
              group(1, "pinned", 1, 50.0, 90.0, cpus_each=1)]
    (c,) = plan_capacity([run(tmp_path, groups, cores=2)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"] is None
    assert c["status"] == "only oversubscribed layouts keep the bound"
    assert c["notes"] == ["only oversubscribed layouts keep the bound: --allow-oversubscribed "
                          "lets one be recommended"]


def test_partial_runs_are_named_and_cohorts_sort_recommended_first(tmp_path):
    good = run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1)], "a", cores=2,
               status="partial", partial_reasons=["worker 1 died"])
    bad = run(tmp_path, [group(0, "pinned", 2, 100.0, 90.0, cpus_each=1)], "b", cores=4,
              status="complete")
    answer = plan_capacity([bad, good], 100.0, 50.0)
    assert [c["machine"] for c in answer["cohorts"]] == ["h 1s2c1t", "h 1s4c1t"]
    assert answer["partial_runs"] == [{"run": str(tmp_path / "a"),
                                       "reasons": ["worker 1 died"]}]
    assert answer["best"] is None  # two cohorts: no single best
    assert answer["runs"] == [str(tmp_path / "b"), str(tmp_path / "a")]


# -- the printed answer ---------------------------------------------------------------------


def row(**fields):
    base = {"placement": "pinned", "threading": "tuned", "instances": 2, "batch": 1,
            "cores_each": 4, "cores_each_max": 4, "unpinned": False, "machine": "h 1s8c1t",
            "kind": "closed loop", "throughput_ips": 100.0, "ci95_ips": [90.0, 110.0],
            "latency_ms": 20.0, "latency_estimate": "conservative", "samples": 5000,
            "servers": 4, "utilisation": 0.625, "headroom": 0.375, "oversubscribed": False,
            "oversubscription": None, "noisy": False, "verdict": "meets", "undecided": None}
    return {**base, **fields}


def test_the_printed_answer_line_by_line():
    best = row(verdict="recommended")
    answer = {"target_ips": 250.0, "latency_bound_ms": 50.0, "stat": "p99", "headroom": 0.2,
              "partial_runs": [{"run": "runs/a", "reasons": ["worker 1 died", "stopped"]},
                               {"run": "runs/b", "reasons": []}],
              "cohorts": [
                  {"model": "resnet50", "engine": "tf", "precision": "fp32",
                   "isa_cap": "native", "machine": "h 1s8c1t", "cpu_model": "EPYC",
                   "simulated": False, "runs": ["runs/a", "runs/b"], "status": "recommended",
                   "recommendation": best, "notes": ["a note"],
                   "candidates": [
                       best,
                       row(instances=3, verdict="oversubscribed", oversubscribed=True,
                           oversubscription=1.5, throughput_ips=120.5, latency_ms=0.5,
                           servers=3),
                       row(instances=4, verdict="oversubscribed", oversubscribed=True),
                       row(instances=8, verdict="meets", oversubscribed=True, noisy=True,
                           latency_ms=None, servers=None, throughput_ips=None),
                       row(instances=1, verdict="cannot decide", undecided="too few")]},
                  {"model": "resnet50", "engine": "tf", "precision": "int8",
                   "isa_cap": "AVX512_CORE", "machine": "1s8c1t (simulated)",
                   "cpu_model": "EPYC", "simulated": True, "runs": ["runs/c"],
                   "status": "no layout keeps the bound", "recommendation": None,
                   "notes": [], "candidates": []}]}
    assert lines(answer) == [
        "capacity for 250 images/s with p99 <= 50 ms, keeping 20% headroom (utilisation <= "
        "80%)",
        "  latency: conservative p99 (LoadGen early stopping, 99% confidence: at least 662 "
        "queries; simulated runs: the plain percentile)",
        "  note: runs/a is partial: worker 1 died; stopped",
        "  note: runs/b is partial: ?",
        "  2 groups of runs measured different things (model, engine, precision, machine, "
        "measured or simulated): one answer each, never ranked against each other",
        "",
        "resnet50 tf fp32 on h 1s8c1t (EPYC) [measured, 2 runs]: recommended",
        "  recommended: 2 x pinned (4 cores each), not oversubscribed",
        "    closed loop: 100.0 images/s per server [90.0, 110.0], planned on the lower end, "
        "p99 20.00 ms (conservative, 5000 queries)",
        "    servers needed: 4, utilisation 62%, headroom 38%",
        "  note: a note",
        "  layout                             machine                figure          img/s"
        "    p99 ms queries servers  verdict",
        "  2 x pinned (4 cores each)          h 1s8c1t               closed loop     100.0"
        "     20.00    5000       4  recommended",
        "  3 x pinned (4 cores each)          h 1s8c1t               closed loop     120.5"
        "     0.500    5000       3  oversubscribed (1.5x the CPUs)",
        "  4 x pinned (4 cores each)          h 1s8c1t               closed loop     100.0"
        "     20.00    5000       4  oversubscribed",
        "  8 x pinned (4 cores each)          h 1s8c1t               closed loop         -"
        "         -    5000       -  meets, oversubscribed, noisy",
        "  1 x pinned (4 cores each)          h 1s8c1t               closed loop     100.0"
        "     20.00    5000       4  cannot decide: too few",
        "",
        "resnet50 tf int8 (ISA capped at AVX512_CORE) on 1s8c1t (simulated) [1 run]: no "
        "layout keeps the bound",
        "  layout                             machine                figure          img/s"
        "    p99 ms queries servers  verdict",
    ]


def test_a_server_recommendation_prints_requests_and_the_oversubscription():
    best = row(verdict="recommended", kind="server peak", ci95_ips=None, oversubscribed=True,
               oversubscription=2.0, utilisation=0.005, headroom=0.995, servers=1,
               throughput_ips=40.0)
    answer = {"target_ips": 0.2, "latency_bound_ms": 0.5, "stat": "p95", "headroom": 0.0,
              "partial_runs": [], "cohorts": [
                  {"model": "m", "engine": "e", "precision": "p", "machine": "x",
                   "cpu_model": None, "simulated": False, "runs": ["r"],
                   "status": "recommended", "recommendation": best, "notes": [],
                   "candidates": []}]}
    out = lines(answer)
    assert out[:2] == ["capacity for 0.2 images/s with p95 <= 0.5 ms, keeping 0% headroom "
                       "(utilisation <= 100%)",
                       "  latency: plain p95 over at least 130 queries (no conservative "
                       "estimate for p95)"]
    assert out[3:7] == [
        "m e p on x [measured, 1 run]: recommended",
        "  recommended: 2 x pinned (4 cores each), OVERSUBSCRIBED (2x the CPUs): time-sliced",
        "    server peak: 40.0 requests/s per server, p95 20.00 ms (conservative, 5000 "
        "queries)",
        "    servers needed: 1, utilisation 0.5%, headroom 100%"]
    answer["stat"] = "mean"
    assert lines(answer)[1] == "  latency: mean over all queries"
    answer["stat"] = "p50"
    assert lines(answer)[1].startswith("  latency: conservative p50 (LoadGen early stopping, "
                                       "99% confidence: at least 11 queries")


def test_each_server_layout_is_its_own_row(tmp_path):
    base = point(2, target=20.0, p99=10.0)
    variants = [base, {**base, "placement": "vm"}, {**base, "instances": 4},
                {**base, "batch": 8}, {**base, "model": "m2"}, {**base, "engine": "tflite"},
                {**base, "precision": "int8"}]
    answer = plan_capacity([server_run(tmp_path, variants)], 100.0, 50.0)
    rows = [r for c in answer["cohorts"] for r in c["candidates"]]
    assert sorted((r["placement"], r["instances"], r["batch"], r["model"], r["engine"],
                   r["precision"]) for r in rows) == sorted([
        ("pinned", 2, 1, "resnet50", "tf", "fp32"), ("vm", 2, 1, "resnet50", "tf", "fp32"),
        ("pinned", 4, 1, "resnet50", "tf", "fp32"), ("pinned", 2, 8, "resnet50", "tf", "fp32"),
        ("pinned", 2, 1, "m2", "tf", "fp32"), ("pinned", 2, 1, "resnet50", "tflite", "fp32"),
        ("pinned", 2, 1, "resnet50", "tf", "int8")])
    assert all(r["rates_tried"] == [20.0] for r in rows)


def test_a_server_row_takes_the_noise_of_the_rate_it_uses(tmp_path):
    probes = [point(2, target=20.0, p99=10.0, probe=True),
              point(2, target=40.0, p99=30.0, probe=True, noisy=True, others_cpu_share=0.05),
              point(2, target=60.0, p99=80.0, probe=True, samples=700)]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 50.0)["cohorts"]
    best = c["recommendation"]
    assert (best["noisy"], best["others_cpu_share"]) == (True, 0.05)
    assert "measured while other processes used 5% of its CPUs (noisy)" in c["notes"]
    (c,) = plan_capacity([server_run(tmp_path, probes)], 100.0, 5.0)["cohorts"]
    (row,) = c["candidates"]  # none kept 5 ms: the highest rate's figures
    assert (row["latency_ms"], row["latency_estimate"], row["samples"]) == (80.0,
                                                                            "conservative", 700)
