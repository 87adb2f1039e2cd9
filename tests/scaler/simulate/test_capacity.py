"""Capacity arithmetic on hand-computed cases."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.results import Run
from scaler.simulate.capacity import plan_capacity, servers_for


def group(placement, n, ips, p99, cpus_each=None, batch=1):
    per = [{"partition": {"cpus": list(range(k * cpus_each, (k + 1) * cpus_each))}
            if cpus_each else None} for k in range(n)]
    return {"placement": placement, "engine": "tf", "precision": "fp32", "instances": n,
            "batch": batch, "status": "complete", "throughput_ips": ips,
            "latency_ms": {"p50": p99 / 2, "p99": p99, "samples": 1000}, "per_instance": per}


def run(tmp_path, groups):
    cores = [{"package": 0, "die": 0, "core_id": c, "node": 0, "cpus": [c]} for c in range(8)]
    return Run(tmp_path, {"scenario": "scaling", "groups": groups,
                          "effective": {"model": "resnet50"},
                          "host": {"hostname": "h", "topology": {"cores": 8,
                                                                 "physical_cores": cores}}})


def test_servers_and_headroom_by_hand():
    assert servers_for(250.0, 100.0) == (3, 50.0, 0.2)
    assert servers_for(200.0, 100.0) == (2, 0.0, 0.0)
    assert servers_for(10.0, 100.0) == (1, 90.0, 9.0)


def test_best_layout_meets_the_bound_with_most_throughput(tmp_path):
    groups = [group("shared", 1, 60.0, 20.0), group("shared", 4, 70.0, 90.0),
              group("pinned", 2, 100.0, 30.0, cpus_each=4),
              group("pinned", 4, 100.0, 45.0, cpus_each=2),
              group("pinned", 8, 130.0, 80.0, cpus_each=1)]
    answer = plan_capacity([run(tmp_path, groups)], 250.0, 50.0)
    best = answer["best"]
    # pinned x8 is fastest but misses the bound; of the two pinned layouts at 100 images/s
    # the one with fewer instances wins the tie
    assert (best["placement"], best["instances"], best["cores_each"]) == ("pinned", 2, 4)
    assert (best["servers"], best["headroom_ips"], best["headroom"]) == (3, 50.0, 0.2)
    shared = [a for a in answer["per_series"] if a["placement"] == "shared"][0]
    assert (shared["instances"], shared["servers"], shared["cores_each"]) == (1, 5, 8)
    assert len(answer["candidates"]) == 5


def test_no_layout_meets_the_bound(tmp_path):
    answer = plan_capacity([run(tmp_path, [group("pinned", 2, 100.0, 30.0, 4)])], 100.0, 10.0)
    assert answer["best"] is None and answer["per_series"] == []


@pytest.mark.parametrize("target,bound,stat", [(0, 10, "p99"), (10, -1, "p99"),
                                               (10, 10, "p42")])
def test_bad_requests(tmp_path, target, bound, stat):
    with pytest.raises(UsageError):
        plan_capacity([run(tmp_path, [group("pinned", 1, 10.0, 5.0, 8)])], target, bound, stat)
