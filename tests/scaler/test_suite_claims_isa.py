"""The suite's throughput claim at the study's two generations' ISAs, from hand-made runs.

The runs are written by hand (points with known repeat values), so the right ratio is known
without the code under test: fp32 capped at avx512_core 20, 21, 22 images/s; int8 capped at
avx512_core_vnni 3.75x those; native fp32 30 and native int8 8.4x that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler import suite
from scaler.results import Run


def run(engine: str, precision: str, values: list[float], cap: str = "native",
        units: dict[str, int] | None = None) -> Run:
    point = {"placement": "pinned", "engine": engine, "precision": precision, "batch": 64,
             "instances": 1, "complete": True, "repeats_ips": values, "isa_cap": cap}
    inst = {"engine": {"engine": engine, "precision": precision,
                       "kernel_isa": {"units": units or {}, "nodes": sum((units or {}).values())}},
            "amx_permission": False}
    return Run(Path("/nonexistent"), {"scenario": "throughput", "points": [point],
                                      "groups": [{"engine": engine, "per_instance": [inst]}]})


def runs(with_caps: bool = True) -> dict[str, Run]:
    out = {"throughput-fp32": run("tf", "fp32", [30.0, 30.0, 30.0]),
           "throughput-int8": run("tflite", "int8", [252.0, 252.0, 252.0])}
    if with_caps:
        out["throughput-fp32-skylake"] = run("openvino", "fp32", [20.0, 21.0, 22.0],
                                             "avx512_core", {"avx512": 54})
        out["throughput-int8-cascadelake"] = run(
            "openvino", "int8", [75.0, 78.75, 82.5], "avx512_core_vnni", {"avx512": 54})
    return out


TOPOLOGY = {"nodes": [0], "cores": 2}


def test_the_capped_ratio_is_the_claim_and_the_native_one_stands_beside_it():
    claim = next(c for c in suite.claims(runs(), TOPOLOGY) if c["test"] == "throughput")
    assert claim["measured"] == pytest.approx(3.75, rel=1e-6)
    assert claim["ci95"][0] < 3.75 < claim["ci95"][1]
    assert claim["verdict"] == "consistent with the study"  # 3.49 within, 1 outside
    assert "avx512_core_vnni" in claim["compared"] and "avx512_core," in claim["compared"]
    assert claim["native"]["measured"] == pytest.approx(8.4, rel=1e-6)
    assert "openvino fp32: avx512: 54 of 54 compute nodes" in claim["note"]
    assert "at this CPU's own ISA: 8.40x" in claim["note"]


def test_without_capped_runs_the_native_ratio_says_why():
    ctx = {"throughput-generations": "engine tflite cannot cap its kernels' instruction set"}
    claim = next(c for c in suite.claims(runs(False), TOPOLOGY, ctx)
                 if c["test"] == "throughput")
    assert claim["measured"] == pytest.approx(8.4, rel=1e-6)
    assert claim["verdict"] == "differs from the study"
    assert "not measured at the study's two ISAs: engine tflite cannot cap" in claim["note"]


def test_the_suite_plans_the_capped_runs_only_with_an_engine_that_caps():
    made = []

    def make(scenario, **options):
        made.append(options)
        return options

    plan = suite.experiments(make, ("pinned",), ("fp32", "int8"), {}, "int8", "openvino")
    names = [e.name for e in plan]
    assert "throughput-fp32-skylake" in names and "throughput-int8-cascadelake" in names
    capped = {o["experiment"]: o for o in made if o.get("isa")}
    assert capped["throughput-fp32-skylake"]["isa"] == "avx512_core"
    assert capped["throughput-int8-cascadelake"] == {
        "placement": "pinned", "precision": "int8", "engine": "openvino",
        "isa": "avx512_core_vnni", "experiment": "throughput-int8-cascadelake"}
    plain = [e.name for e in suite.experiments(make, ("pinned",), ("fp32", "int8"), {},
                                               "int8", None)]
    assert not any("skylake" in n or "cascadelake" in n for n in plain)


def test_capacity_keeps_isa_caps_in_cohorts_of_their_own():
    """Two rows alike but for their cap are two cohorts: a capped run stands for another
    machine (an older generation), never a layout of this one."""
    from scaler.simulate.capacity import _cohort_key

    row = {"model": "resnet50", "engine": "openvino", "precision": "int8",
           "machine_key": "m", "simulated": False}
    assert _cohort_key({**row, "isa_cap": "avx512_core_vnni"}) != _cohort_key(row)
    assert _cohort_key({**row, "isa_cap": "native"}) == _cohort_key(row)
