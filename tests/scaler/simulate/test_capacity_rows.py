"""Every field of a capacity candidate row, the runs and points left out, the cohorts kept
apart and the request's echo: hand-written run documents with saved points, each expected
value read off the document by hand."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.results import Run
from scaler.simulate.capacity import decision, plan_capacity, run_candidates

LAT = {"p50": 8.0, "p99": 18.0, "mean": 9.0, "samples": 5000,
       "early_stopping": {"p50": 8.5, "p99": 20.0}}


def doc_run(tmp_path, points, groups, name="r", threads=1, cores=8, **doc):
    phys = [{"package": 0, "die": 0, "core_id": c, "node": 0,
             "cpus": [c * threads + t for t in range(threads)]} for c in range(cores)]
    return Run(tmp_path / name, {
        "scenario": doc.pop("scenario", "scaling"), "points": points, "groups": groups,
        "effective": {"model": "resnet50", "engine": "tf", "precision": "fp32"},
        "requested": {"min_duration_s": 10.0, "min_queries": 200},
        "host": {"hostname": "h", "cpu_model": "cpu", "topology": {
            "packages": 1, "cores": cores, "threads_per_core": threads, "nodes": [{}],
            "physical_cores": phys}}, **doc})


def grp(gid, *cpus, **extra):
    return {"id": gid, "per_instance": [{"partition": {"cpus": list(c)} if c else None}
                                        for c in cpus], **extra}


def test_a_closed_loop_row_field_by_field(tmp_path):
    p = {"placement": "pinned", "engine": "tf", "precision": "bf16", "model": "mobilenet",
         "instances": 2, "batch": 4, "groups": [7, 0], "repeats": 3, "complete": 3,
         "throughput_ips": 100.0, "ci95_ips": [90.0, 110.0], "latency_ms": LAT, "noisy": True,
         "others_cpu_share": 0.07, "threading": "model-zoo", "isa_cap": "AVX2"}
    r = doc_run(tmp_path, [p], [grp(0, [0, 1], [2, 3], oversubscription=None)])
    rows, left = run_candidates(r, "p99", 50.0)
    assert left == []
    assert rows == [{
        "run": str(tmp_path / "r"), "model": "mobilenet", "engine": "tf", "precision": "bf16",
        "isa_cap": "AVX2", "machine": "h 1s8c1t", "simulated": False, "cpu_model": "cpu",
        "machine_key": ("measured", "h", "cpu", "1s8c1t"), "placement": "pinned",
        "threading": "model-zoo", "instances": 2, "batch": 4, "cores_each": 2,
        "cores_each_max": 2, "unpinned": False, "machine_cores": 8, "oversubscribed": False,
        "oversubscription": None, "noisy": True, "others_cpu_share": 0.07, "repeats": 3,
        "complete": 3, "kind": "closed loop", "throughput_ips": 100.0,
        "ci95_ips": [90.0, 110.0], "planning_ips": 90.0, "latency_ms": 20.0,
        "latency_estimate": "conservative", "undecided": None, "samples": 5000,
        "meets_bound": True}]
    (row,) = run_candidates(r, "p99", 19.0)[0]
    assert row["meets_bound"] is False  # 20 ms conservative, not the plain 18
    (row,) = run_candidates(r, "p99", 20.0)[0]
    assert row["meets_bound"] is True  # at the bound keeps it


def test_a_point_without_names_takes_the_runs_and_counts_physical_cores(tmp_path):
    p = {"placement": "pinned", "instances": 2, "batch": None, "groups": [0], "complete": 1,
         "throughput_ips": 50.0, "latency_ms": {"samples": 3}, "oversubscribed": True}
    # two threads a core: CPUs 0,1 are one core, 2 is half of the next
    r = doc_run(tmp_path, [p], [grp(0, [0, 1], [2, 3, 4], oversubscription=1.5)], threads=2)
    (row,), _ = run_candidates(r, "p99", 50.0)
    assert (row["model"], row["engine"], row["precision"], row["isa_cap"]) == (
        "resnet50", "tf", "fp32", "native")
    assert (row["batch"], row["cores_each"], row["cores_each_max"]) == (1, 1, 2)
    assert (row["threading"], row["machine"], row["noisy"]) == ("tuned", "h 1s8c2t", False)
    assert (row["oversubscribed"], row["oversubscription"]) == (True, 1.5)
    assert (row["planning_ips"], row["ci95_ips"], row["samples"]) == (50.0, None, 3)
    assert (row["latency_ms"], row["meets_bound"]) == (None, False)
    assert row["undecided"] == "p99 from 3 queries: fewer than the 662 it needs"


def test_unpinned_instances_own_every_core_and_a_group_may_be_missing(tmp_path):
    p = {"placement": "shared", "instances": 2, "groups": [0], "complete": 1,
         "throughput_ips": 50.0, "latency_ms": LAT}
    r = doc_run(tmp_path, [p], [grp(0, None, None, oversubscribed=True)])
    (row,), _ = run_candidates(r, "p99", 50.0)
    assert (row["unpinned"], row["cores_each"], row["cores_each_max"]) == (True, 8, 8)
    assert row["oversubscribed"] is True  # the group says so
    lost = doc_run(tmp_path, [{**p, "groups": [3]}], [grp(0, None)])
    (row,), _ = run_candidates(lost, "p99", 50.0)
    assert (row["cores_each"], row["cores_each_max"], row["unpinned"]) == (None, None, True)


def test_incomplete_and_emulated_points_are_left_out(tmp_path):
    base = {"placement": "vm", "instances": 2, "groups": [0], "complete": 1,
            "throughput_ips": 50.0, "latency_ms": LAT}
    pts = [{**base, "emulated": True}, {**base, "complete": 0},
           {**base, "throughput_ips": None}, {**base, "instances": 3}]
    rows, left = run_candidates(doc_run(tmp_path, pts, [grp(0, None)]), "p99", 50.0)
    assert [r["instances"] for r in rows] == [3]
    assert left == [{"run": str(tmp_path / "r"), "what": "2 x vm",
                     "reason": "emulated (VM under TCG): not a timing result"}]


def test_decision_for_mean_and_percentiles_without_early_stopping():
    assert decision({"mean": 9.0, "samples": 1}, "mean", False) == (9.0, "mean", None)
    assert decision({"samples": 0}, "mean", False) == (None, "mean", "no queries")
    assert decision({"p95": 7.0, "samples": 130}, "p95", False) == (7.0, "plain", None)
    assert decision({"p95": 7.0, "samples": 129}, "p95", False) == (
        None, "plain", "p95 from 129 queries: fewer than the 130 it needs")
    assert decision({"p99": 7.0, "samples": 662}, "p99", True) == (7.0, "simulated", None)
    assert decision({"p99": 7.0, "early_stopping": {"p99": 9.0}}, "p99", True) == (
        None, "simulated", "p99 from 0 queries: fewer than the 662 it needs")
    assert decision({"p99": 7.0, "samples": 700, "early_stopping": {"p50": 1.0}}, "p99",
                    False) == (7.0, "plain", None)


def test_the_answer_echoes_the_request_and_names_what_it_left_out(tmp_path):
    good = doc_run(tmp_path, [{"placement": "pinned", "instances": 1, "groups": [0],
                               "complete": 1, "throughput_ips": 50.0, "latency_ms": LAT}],
                   [grp(0, [0])])
    null = doc_run(tmp_path, [], [], "n")
    null.doc["effective"] = {"model": "tiny", "engine": "null", "precision": "fp32"}
    answer = plan_capacity([good, null], 100.0, 50.0, stat="p50", headroom=0.1,
                           allow_oversubscribed=True, allow_styles=("defaults",))
    assert (answer["target_ips"], answer["latency_bound_ms"], answer["stat"],
            answer["headroom"], answer["allow_oversubscribed"], answer["allow_styles"]) == (
        100.0, 50.0, "p50", 0.1, True, ["defaults"])
    assert answer["left_out"] == [{
        "run": str(tmp_path / "n"), "what": "scaling, null fp32 tiny",
        "reason": "null engine: it does no inference (it measures the harness itself)"}]
    assert answer["partial_runs"] == [] and answer["runs"] == [str(tmp_path / "r"),
                                                                str(tmp_path / "n")]
    (c,) = answer["cohorts"]
    assert c["recommendation"]["latency_ms"] == 8.5  # the conservative p50
    assert (c["model"], c["engine"], c["precision"], c["isa_cap"], c["machine"],
            c["cpu_model"], c["simulated"]) == ("resnet50", "tf", "fp32", "native", "h 1s8c1t",
                                                "cpu", False)
    with pytest.raises(UsageError) as raised:
        plan_capacity([null], 100.0, 50.0)
    assert str(raised.value) == (
        f"no run here can support a capacity answer ({tmp_path / 'n'}: null engine: it does "
        "no inference (it measures the harness itself))")
    with pytest.raises(UsageError) as raised:
        plan_capacity([doc_run(tmp_path, [], [], "e")], 100.0, 50.0)
    assert str(raised.value) == "no run here can support a capacity answer (no complete group)"


@pytest.mark.parametrize("args, message", [
    ((0.0, 10.0), "--target-ips must be positive, not 0"),
    ((-1.5, 10.0), "--target-ips must be positive, not -1.5"),
    ((10.0, 0.0), "--latency-bound-ms must be positive, not 0"),
    ((10.0, 10.0, "p42"), "unknown --stat 'p42': choose from p50, p90, p95, p99, p99.9, mean"),
    ((10.0, 10.0, "p99", 1.0), "--headroom must lie in [0%, 100%), not 100%"),
    ((10.0, 10.0, "p99", -0.1), "--headroom must lie in [0%, 100%), not -10%"),
])
def test_bad_requests_say_what_is_wrong(tmp_path, args, message):
    with pytest.raises(UsageError) as raised:
        plan_capacity([], *args)
    assert str(raised.value) == message


def test_cohorts_split_by_precision_and_isa_cap_and_sort_by_name(tmp_path):
    def pt(**extra):
        return {"placement": "pinned", "instances": 1, "groups": [0], "complete": 1,
                "throughput_ips": 50.0, "latency_ms": LAT, **extra}
    r = doc_run(tmp_path, [pt(precision="int8"), pt(isa_cap="AVX2"), pt(), pt(model="a")],
                [grp(0, [0])])
    answer = plan_capacity([r], 100.0, 50.0)
    assert [(c["model"], c["precision"], c["isa_cap"]) for c in answer["cohorts"]] == [
        ("a", "fp32", "native"), ("resnet50", "fp32", "AVX2"), ("resnet50", "fp32", "native"),
        ("resnet50", "int8", "native")]
    assert answer["best"] is None


def test_ties_rank_fewer_instances_then_smaller_batches_first(tmp_path):
    def pt(n, batch):
        return {"placement": "pinned", "instances": n, "batch": batch, "groups": [0],
                "complete": 1, "throughput_ips": 50.0, "latency_ms": LAT}
    r = doc_run(tmp_path, [pt(2, 1), pt(1, 8), pt(1, 4)], [grp(0, [0])])
    (c,) = plan_capacity([r], 100.0, 50.0)["cohorts"]
    assert (c["recommendation"]["instances"], c["recommendation"]["batch"]) == (1, 4)
