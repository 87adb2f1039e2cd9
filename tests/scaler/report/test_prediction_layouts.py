"""The report's prediction with fixed-size instances: shared against 12-vCPU VMs (6 cores with
their SMT siblings) on the study's 2-socket server, calibrated on the committed reference
suite of a real host, and the split of their ratio among the model's terms."""

from __future__ import annotations

import math

from scaler.report.extrapolate import extrapolate
from scaler.report.prediction import section
from scaler.results import find_runs
from scaler.simulate.validate import REFERENCE

SUITE = next(REFERENCE.glob("suite-*"))


def _predict(**given: float) -> dict:
    return extrapolate(find_runs([str(SUITE)]), "2s28c2t", tuple(range(1, 9)), given, 2000, 0,
                       "vm", 6, True)


def test_vm_curve_ratio_and_terms_are_shown():
    result = _predict()
    assert result["placement"] == "vm" and result["cores_per_instance"] == 6 and result["smt"]
    ratios = {r["instances"]: r["ratio"] for r in result["ratios"]}
    assert sorted(ratios) == list(range(1, 9))
    assert ratios[1] < 1  # one 12-vCPU VM is slower than one instance on the whole machine
    x = result["explanation"]
    assert x["at"] == 8 and x["study"]["ratio"] == 2.04
    # the Shapley shares add up to the change the terms make over the layouts alone
    assert math.isclose(sum(t["log_share"] for t in x["terms"]),
                        math.log(x["ratio_at"] / x["ratio_without_terms"]), abs_tol=1e-9)
    groups = result["run"].doc["groups"]
    vm = [g for g in groups if g["placement"] == "vm"]
    assert vm and all(g["cores_per_instance"] == 6 for g in vm)
    html = section(result)
    assert "vm images/s (6 cores with SMT siblings each)" in html
    assert "What each term explains" in html and "The study: 2.04x at N=8" in html
    for t in [*x["terms"], *x["inactive_terms"]]:
        assert t["name"] in html


def test_an_assumed_remote_memory_penalty_lowers_shared_and_leaves_vm():
    base, remote = _predict(numa_penalty=0.0), _predict(numa_penalty=0.3)  # 0.8 assumed
    for b, r in zip(base["ratios"], remote["ratios"]):
        assert math.isclose(r["other_ips"], b["other_ips"], rel_tol=1e-12)
        if b["instances"] > 1:
            assert r["shared_ips"] < b["shared_ips"]
    term = {t["name"]: t for t in remote["explanation"]["terms"]}["numa_penalty"]
    assert term["source"] == "given" and term["factor"] > 1
