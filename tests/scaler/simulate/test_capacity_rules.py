"""Which machine a run is, which runs cannot support a capacity answer and why, and how a
layout is named: hand-written run documents, answers read off them by hand."""

from __future__ import annotations

import pytest

from scaler.results import Run
from scaler.simulate.capacity import layout_text, machine_of, run_exclusion


def doc_run(tmp_path, **doc):
    return Run(tmp_path / "r", {"scenario": doc.pop("scenario", "scaling"), **doc})


def topology(packages, cores, threads, nodes):
    return {"packages": packages, "cores": cores, "threads_per_core": threads, "nodes": nodes}


def test_a_measured_machine_is_its_host_and_shape(tmp_path):
    run = doc_run(tmp_path, host={"hostname": "box", "cpu_model": "EPYC 9654",
                                  "topology": topology(2, 56, 2, [{}, {}, {}, {}])})
    assert machine_of(run) == {"label": "box 2s28c2t2n",
                               "key": ("measured", "box", "EPYC 9654", "2s28c2t2n"),
                               "cores": 56, "cpu_model": "EPYC 9654", "hostname": "box",
                               "simulated": False}
    one_node = doc_run(tmp_path, host={"hostname": "b", "topology": topology(2, 8, 1, 2)})
    assert machine_of(one_node)["label"] == "b 2s4c1t"  # a node per package: not named
    nodes_count = doc_run(tmp_path, host={"hostname": "b", "topology": topology(1, 8, 1, 2)})
    assert machine_of(nodes_count)["label"] == "b 1s8c1t2n"


def test_a_simulated_machine_is_its_shape_alone(tmp_path):
    run = doc_run(tmp_path, simulated=True,
                  host={"hostname": "sim", "cpu_model": "x", "topology": topology(1, 8, 1, [])})
    m = machine_of(run)
    assert m["label"] == "1s8c1t (simulated)" and m["key"] == ("simulated", "1s8c1t")
    assert m["simulated"] is True and m["cores"] == 8


def test_a_run_without_host_facts_is_named_plainly(tmp_path):
    m = machine_of(doc_run(tmp_path))
    assert m == {"label": "? 1s0c1t", "key": ("measured", "?", None, "1s0c1t"), "cores": 0,
                 "cpu_model": None, "hostname": None, "simulated": False}


RULES = {"min_duration_s": 10.0, "min_queries": 200}


@pytest.mark.parametrize("doc, why", [
    ({"effective": {"engine": "null"}},
     "null engine: it does no inference (it measures the harness itself)"),
    ({"effective": {"engine": "tf"}, "emulated": True},
     "emulated: VMs without hardware virtualization (TCG, about 100x slow) are not timing "
     "results"),
    ({"effective": {"engine": "tf"}, "scenario": "compare"},
     "a compare run holds no layout to plan with"),
    ({"effective": {"engine": "tf"}, "requested": {**RULES, "quick": True}},
     "smoke run (--quick)"),
    ({"effective": {"engine": "tf"}, "requested": {**RULES, "smoke": True}},
     "smoke run (--quick)"),
    ({"effective": {"engine": "tf"}, "requested": {"min_duration_s": 2.0, "min_queries": 10}},
     "smoke run: its rules (2 s, 10 queries) are --quick's or shorter"),
    ({"effective": {"engine": "tf"}, "requested": {"min_duration_s": 0.5, "min_queries": 3}},
     "smoke run: its rules (0.5 s, 3 queries) are --quick's or shorter"),
])
def test_runs_that_cannot_support_an_answer_say_why(tmp_path, doc, why):
    assert run_exclusion(doc_run(tmp_path, **doc)) == why


@pytest.mark.parametrize("doc", [
    {"effective": {"engine": "tf"}, "requested": {"min_duration_s": 2.5, "min_queries": 10}},
    {"effective": {"engine": "tf"}, "requested": {"min_duration_s": 2.0, "min_queries": 11}},
    {"effective": {"engine": "tf"}, "requested": {"min_duration_s": 2.0}},
    {"effective": {"engine": "tf"}, "requested": {"min_queries": 3}},
    {"effective": {"engine": "tf"}, "simulated": True,
     "requested": {"quick": True, "min_duration_s": 0, "min_queries": 1}},
    {"effective": {"engine": "retired-engine"}},  # no longer registered: it inferred
    {"effective": {"engine": "tflite"}, "scenario": "server"},
    {"effective": {"engine": "tf"}, "scenario": "latency"},
    {"effective": {"engine": "tf"}, "scenario": "throughput"},
    {"effective": {"engine": "tf"}, "scenario": "multistream"},
])
def test_runs_that_can(tmp_path, doc):
    assert run_exclusion(doc_run(tmp_path, **doc)) is None


@pytest.mark.parametrize("fields, text", [
    ({"unpinned": True, "cores_each": 4, "cores_each_max": 4}, "2 x shared (unpinned)"),
    ({"cores_each": None}, "2 x shared (? cores)"),
    ({"cores_each": 1, "cores_each_max": 1}, "2 x shared (1 core each)"),
    ({"cores_each": 2, "cores_each_max": 2, "batch": 4}, "2 x shared (2 cores each, batch 4)"),
    ({"cores_each": 1, "cores_each_max": 2, "batch": 1}, "2 x shared (1-2 cores each)"),
])
def test_layouts_are_named_as_the_user_reads_them(fields, text):
    assert layout_text({"instances": 2, "placement": "shared", **fields}) == text
