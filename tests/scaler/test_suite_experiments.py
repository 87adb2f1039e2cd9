"""Every run the suite plans, with its scenario and every option passed, for the two ISA
generations and the study's run (hand-made make(): records what it is asked, pure), and the
native throughput ratio shown beside the capped claim."""

from __future__ import annotations

import re

from scaler import suite


def recording():
    made = []

    def make(scenario, **options):
        made.append((scenario, options))
        return (scenario, options)

    return make, made


def test_the_generation_and_study_runs_are_planned_with_their_scenarios_and_options():
    make, made = recording()
    study = {"precision": "int8", "engine": "openvino", "instances": 4, "repeat": 5}
    runs = suite.experiments(make, ("pinned", "vm"), ("fp32",), {}, "fp32", "openvino", study)
    assert [(e.name, e.scenario) for e in runs] == [
        ("latency", "latency"), ("throughput-fp32", "throughput"),
        ("throughput-fp32-skylake", "throughput"), ("throughput-int8-cascadelake", "throughput"),
        ("scaling", "scaling"), ("scaling-model-zoo", "scaling"),
        ("multistream-fp32", "multistream")]
    assert [scenario for scenario, _ in made] == [e.scenario for e in runs]
    options = {e.name: e.settings[1] for e in runs}
    assert options["throughput-fp32-skylake"] == {
        "placement": "pinned", "precision": "fp32", "engine": "openvino", "isa": "avx512_core",
        "experiment": "throughput-fp32-skylake"}
    assert options["throughput-int8-cascadelake"] == {
        "placement": "pinned", "precision": "int8", "engine": "openvino",
        "isa": "avx512_core_vnni", "experiment": "throughput-int8-cascadelake"}
    assert options["scaling-model-zoo"] == {
        "placement": "shared,pinned", "precision": "int8", "engine": "openvino",
        "instances": "4", "threading": "tuned,model-zoo", "experiment": "scaling-model-zoo",
        "repeat": 5}


def test_the_study_run_without_a_repeat_takes_the_default():
    make, _ = recording()
    study = {"precision": "fp32", "engine": "tf", "instances": 8, "repeat": None}
    runs = suite.experiments(make, ("vm",), ("fp32",), {}, "fp32", None, study)
    (zoo,) = [e for e in runs if e.name == "scaling-model-zoo"]
    assert zoo.settings == ("scaling", {
        "placement": "shared,vm", "precision": "fp32", "engine": "tf", "instances": "8",
        "threading": "tuned,model-zoo", "experiment": "scaling-model-zoo"})
    assert not any(e.name.endswith(("-skylake", "-cascadelake")) for e in runs)


def test_the_native_ratio_beside_the_capped_claim_shows_both_ends_of_its_interval():
    from tests.scaler.test_suite_claims_isa import TOPOLOGY, run, runs

    spread = {**runs(), "throughput-int8": run("tflite", "int8", [250.0, 252.0, 254.0])}
    (claim,) = [c for c in suite.claims(spread, TOPOLOGY) if c["test"] == "throughput"]
    found = re.search(r"at this CPU's own ISA: 8\.40x \[(\d+\.\d\d), (\d+\.\d\d)\] \(",
                      claim["note"])
    assert found, claim["note"]
    low, high = map(float, found.groups())
    assert low < 8.40 < high  # 250, 252, 254 over 30: an interval around 8.40 of some width
    # one repeat each: a ratio without an interval, shown bare
    single = {**runs(), "throughput-fp32": run("tf", "fp32", [30.0]),
              "throughput-int8": run("tflite", "int8", [252.0])}
    (claim,) = [c for c in suite.claims(single, TOPOLOGY) if c["test"] == "throughput"]
    assert "; at this CPU's own ISA: 8.40x (" in claim["note"]
