"""Capacity arithmetic and rules on hand-computed cases.

The runs here are hand-written documents: they prove the arithmetic (servers, headroom,
ranking) and the rules (what is left out, what cannot be decided) on figures chosen to
expose each rule, not anything about real runs; tests/scaler/cli/test_capacity.py runs the
real commands.
"""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.results import Run
from scaler.simulate.capacity import (
    decision,
    parse_headroom,
    plan_capacity,
    run_exclusion,
    servers_for,
)

ENOUGH = 5000  # queries: more than the 662 the conservative p99 needs


def group(gid, placement, n, ips, p99, cpus_each=None, batch=1, samples=ENOUGH, **extra):
    per = [{"partition": {"cpus": list(range(k * cpus_each, (k + 1) * cpus_each))}
            if cpus_each else None} for k in range(n)]
    return {"id": gid, "placement": placement, "engine": "tf", "precision": "fp32",
            "model": "resnet50", "instances": n, "batch": batch, "status": "complete",
            "throughput_ips": ips, "repeat": 0,
            "latency_ms": {"p50": p99 / 2, "p99": p99 * 0.9, "samples": samples,
                           "early_stopping": {"p50": p99 / 2,
                                              "p99": p99 if samples >= 662 else None}},
            "per_instance": per, **extra}


def run(tmp_path, groups, name="r", engine="tf", cores=8, **doc):
    phys = [{"package": 0, "die": 0, "core_id": c, "node": 0, "cpus": [c]} for c in range(cores)]
    return Run(tmp_path / name, {
        "scenario": doc.pop("scenario", "scaling"), "groups": groups,
        "effective": {"model": "resnet50", "engine": engine, "precision": "fp32"},
        "requested": {"min_duration_s": 10.0, "min_queries": 200},
        "host": {"hostname": "h", "cpu_model": "cpu", "topology": {
            "packages": 1, "cores": cores, "threads_per_core": 1, "nodes": [{}],
            "physical_cores": phys}}, **doc})


def test_servers_utilisation_and_headroom_by_hand():
    # 250 images/s on 100 images/s servers: 3 servers run at 83%; at most 80% needs 4
    assert servers_for(250.0, 100.0) == (3, pytest.approx(250 / 300), pytest.approx(50 / 300))
    assert servers_for(250.0, 100.0, 0.2)[0] == 4
    assert servers_for(200.0, 100.0, 0.0)[0] == 2
    assert servers_for(200.0, 100.0, 0.2)[0] == 3  # 2 would run at 100%
    assert servers_for(10.0, 100.0, 0.2) == (1, pytest.approx(0.1), pytest.approx(0.9))


@pytest.mark.parametrize("text,share", [("20%", 0.2), ("0.2", 0.2), ("0", 0.0), ("0%", 0.0),
                                        ("99.5%", 0.995)])
def test_headroom_parses(text, share):
    assert parse_headroom(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["20", "100%", "-5%", "lots", "nan", "1"])
def test_bad_headroom_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--headroom"):
        parse_headroom(text)


def test_decision_uses_the_conservative_percentile_or_none():
    lat = {"p99": 10.0, "samples": 5000, "early_stopping": {"p99": 12.0}}
    assert decision(lat, "p99", False) == (12.0, "conservative", None)
    thin = {"p99": 10.0, "samples": 95, "early_stopping": {"p99": None}}
    value, _, why = decision(thin, "p99", False)
    assert value is None and "95 queries" in why and "662" in why
    # simulated runs keep no raw samples: the plain percentile, with enough draws
    assert decision({"p99": 10.0, "samples": 20000}, "p99", True)[0] == 10.0
    assert decision({"p99": 10.0, "samples": 100}, "p99", True)[0] is None


def test_best_layout_meets_the_bound_with_most_throughput(tmp_path):
    groups = [group(0, "shared", 1, 60.0, 20.0), group(1, "shared", 4, 70.0, 90.0),
              group(2, "pinned", 2, 100.0, 30.0, cpus_each=4),
              group(3, "pinned", 4, 100.0, 45.0, cpus_each=2),
              group(4, "pinned", 8, 130.0, 80.0, cpus_each=1)]
    answer = plan_capacity([run(tmp_path, groups)], 250.0, 50.0, headroom=0.0)
    (cohort,) = answer["cohorts"]
    best = cohort["recommendation"]
    # pinned x8 is fastest but misses the bound; of the two pinned layouts at 100 images/s
    # the one with fewer instances wins the tie
    assert (best["placement"], best["instances"], best["cores_each"]) == ("pinned", 2, 4)
    assert (best["servers"], best["utilisation"]) == (3, pytest.approx(250 / 300))
    assert answer["best"] is best
    verdicts = {(r["placement"], r["instances"]): r["verdict"] for r in cohort["candidates"]}
    assert verdicts[("pinned", 8)] == "misses the bound"
    assert verdicts[("pinned", 4)] == "meets"


def test_too_few_queries_cannot_decide(tmp_path):
    """A faster layout measured over 95 queries is never recommended; the answer says it
    could not tell."""
    groups = [group(0, "pinned", 1, 50.0, 20.0, cpus_each=1),
              group(1, "pinned", 2, 100.0, 20.0, cpus_each=1, samples=95)]
    (c,) = plan_capacity([run(tmp_path, groups)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["instances"] == 1
    assert any("cannot tell" in n and "95 queries" in n for n in c["notes"])
    groups = [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1, samples=95)]
    (c,) = plan_capacity([run(tmp_path, groups)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"] is None and c["status"] == "cannot decide"


def test_oversubscribed_is_listed_not_recommended_unless_allowed(tmp_path):
    groups = [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1),
              group(1, "pinned", 3, 120.0, 25.0, cpus_each=1, oversubscribed=True,
                    oversubscription=1.5)]
    runs = [run(tmp_path, groups, cores=2)]
    (c,) = plan_capacity(runs, 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["instances"] == 2
    assert any("oversubscribed" in n for n in c["notes"])
    (c,) = plan_capacity(runs, 100.0, 50.0, allow_oversubscribed=True)["cohorts"]
    assert c["recommendation"]["instances"] == 3 and c["recommendation"]["oversubscribed"]


def test_the_lower_end_of_the_interval_is_planned_on(tmp_path):
    doc_points = [{"placement": "pinned", "engine": "tf", "precision": "fp32",
                   "model": "resnet50", "instances": 2, "batch": 1, "groups": [0],
                   "repeats": 3, "complete": 3, "throughput_ips": 100.0,
                   "ci95_ips": [80.0, 120.0],
                   "latency_ms": {"p99": 10.0, "samples": 5000,
                                  "early_stopping": {"p99": 11.0}}}]
    r = run(tmp_path, [group(0, "pinned", 2, 100.0, 11.0, cpus_each=1)], points=doc_points)
    (c,) = plan_capacity([r], 160.0, 50.0, headroom=0.0)["cohorts"]
    assert c["recommendation"]["planning_ips"] == 80.0
    assert c["recommendation"]["servers"] == 2  # 160 / 80; on the median it would be 2 too
    (c,) = plan_capacity([r], 170.0, 50.0, headroom=0.0)["cohorts"]
    assert c["recommendation"]["servers"] == 3  # 170 / 80 (the median would say 2)


def test_runs_that_cannot_support_an_answer(tmp_path):
    real = run(tmp_path, [group(0, "pinned", 1, 50.0, 20.0, cpus_each=1)])
    null = run(tmp_path, [group(0, "pinned", 1, 5e6, 0.01, cpus_each=1)], "n", engine="null")
    emulated = run(tmp_path, [group(0, "vm", 1, 0.5, 900.0)], "e", emulated=True)
    smoke = run(tmp_path, [group(0, "pinned", 1, 50.0, 20.0, cpus_each=1)], "s")
    smoke.doc["requested"] = {"min_duration_s": 2.0, "min_queries": 10}
    assert run_exclusion(real) is None
    assert "null engine" in run_exclusion(null)
    assert "emulated" in run_exclusion(emulated)
    assert "smoke" in run_exclusion(smoke)
    answer = plan_capacity([real, null, emulated, smoke], 100.0, 50.0)
    assert len(answer["cohorts"]) == 1 and len(answer["left_out"]) == 3
    with pytest.raises(UsageError, match="null engine"):
        plan_capacity([null], 100.0, 50.0)


def test_machines_and_simulation_are_cohorts_apart(tmp_path):
    small = run(tmp_path, [group(0, "pinned", 2, 100.0, 20.0, cpus_each=1)], "a", cores=2)
    big = run(tmp_path, [group(0, "pinned", 56, 3000.0, 20.0, cpus_each=1)], "b", cores=56)
    sim = run(tmp_path, [group(0, "pinned", 56, 3000.0, 20.0, cpus_each=1, simulated=True)],
              "c", cores=56, simulated=True)
    answer = plan_capacity([small, big, sim], 100.0, 50.0)
    assert len(answer["cohorts"]) == 3 and answer["best"] is None
    assert sorted(c["machine"] for c in answer["cohorts"]) == [
        "1s56c1t (simulated)", "h 1s2c1t", "h 1s56c1t"]


@pytest.mark.parametrize("target,bound,stat", [(0, 10, "p99"), (10, -1, "p99"),
                                               (10, 10, "p42")])
def test_bad_requests(tmp_path, target, bound, stat):
    with pytest.raises(UsageError):
        plan_capacity([run(tmp_path, [group(0, "pinned", 1, 10.0, 5.0, 8)])], target, bound,
                      stat)
