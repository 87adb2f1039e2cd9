"""The scaling and multistream claims against bare metal as the study ran it, from hand-made
runs whose answer is known by hand.

Repeats identical on each side make a ratio and its interval exact (B over A, interval
[ratio, ratio]): a study run whose pinned-model-zoo series is 10% above shared-model-zoo must
claim 1.10x, whatever the tuned series say beside it. The read-back of each group is written
here too (which CPUs each instance's compute threads were bound to, its spin share), so the
mechanism the claim names is known without the code under test.
"""

from __future__ import annotations

import pytest

from scaler import suite, suite_sides, suite_study
from scaler.results import Run
from tests.scaler.test_suite_claims import TOPO_1_NODE, TOPO_2_NODES, claim, point, probe, run

# the sweep's pinned over shared at N=8: 1.06x, the figure the suite gave before
SWEEP = [point("shared", 8, (100.0,) * 3, engine="tflite", precision="int8"),
         point("pinned", 8, (106.0,) * 3, engine="tflite", precision="int8")]


def instance(bound=(), process="0-1", spin=0.0, by="runtime"):
    return {"thread_readback": {"bound_cpus": list(bound), "process_cpus": process,
                                "bound_by": by if bound else None},
            "spin": {"share": spin}}


def study_run(tmp_path, mz=(100.0, 110.0), tuned=(100.0, 102.0), n=8, stacked=True,
              spin=0.3, tuned_spin=0.0):
    """A study run at N: shared and pinned under tuned and model-zoo; groups 1-4 carry the
    read-back of the model-zoo bare metal (stacked on CPUs 0,1 or not bound) and tuned."""
    bound = ("0", "1") if stacked else ()
    groups = [{"id": 1, "per_instance": [instance(bound, spin=spin)] * n},
              {"id": 2, "per_instance": [instance(bound, spin=spin)] * n},
              {"id": 3, "per_instance": [instance(spin=tuned_spin)] * n},
              {"id": 4, "per_instance": [instance((str(k % 2),), process=str(k % 2), by=None)
                                         for k in range(n)]}]
    def pt(placement, v, style, **extra):  # a figure three times, or the repeats given
        ips = tuple(v) if isinstance(v, tuple) else (v,) * 3
        return point(placement, n, ips, threading=style, engine="onnxruntime",
                     precision="int8", throughput_ips=sorted(ips)[1], **extra)

    pts = [pt("shared", mz[0], "model-zoo", groups=[1, 2]),
           pt("pinned", mz[1], "model-zoo", groups=[4]),
           pt("shared", tuned[0], "tuned", groups=[3]), pt("pinned", tuned[1], "tuned")]
    return Run(tmp_path / "study", {"scenario": "scaling", "points": pts, "groups": groups})


STUDY = {"engine": "onnxruntime", "precision": "int8", "instances": 8,
         "why": "onnxruntime: binds and spins"}


def test_the_claim_is_vm_like_over_the_studys_bare_metal_with_tuned_beside(tmp_path):
    runs = {"scaling": run(tmp_path, "s", SWEEP), suite_study.STUDY_RUN: study_run(tmp_path)}
    c = claim(suite.claims(runs, TOPO_1_NODE, study=STUDY), "scaling")
    assert c["measured"] == pytest.approx(1.10) and c["ci95"] == pytest.approx([1.10, 1.10])
    assert c["verdict"] == "differs from the study"
    assert c["compared"] == "pinned-model-zoo over shared-model-zoo at N=8 (onnxruntime int8)"
    assert c["against"] == "the study's bare metal (--threading model-zoo)"
    t = c["tuned"]  # same run, same engine: 1.02x exactly
    assert t["measured"] == pytest.approx(1.02) and t["ci95"] == pytest.approx([1.02, 1.02])
    assert t["compared"] == "pinned-tuned over shared-tuned at N=8"
    assert t["verdict"] == "differs from the study"
    assert t["sweep"]["measured"] == pytest.approx(1.06)  # the sweep's figure is kept
    reasons = c["note"].split("; ")
    # the pinned side read back two partitions (four instances on each core at N=8)
    assert reasons[0] == ("the study's bare metal stacked the 8 instances thread by thread on "
                          "the same CPUs 0,1 (thread k of every instance on CPU k, bound by "
                          "runtime), while each VM-like instance stayed inside its partition "
                          "(CPUs 0 / 1)")
    assert reasons[1] == ("its runtimes spun 30% of their idle CPU time (tuned: 0%), CPU time "
                          "the other instances on those CPUs needed")
    assert not any("NUMA" in r for r in reasons)  # the mechanism shown replaces it
    assert reasons[2] == "8 instances on 2 cores: oversubscribed"
    assert reasons[3] == "engine onnxruntime int8: onnxruntime: binds and spins"
    assert reasons[4] == suite_sides.stands_in("pinned")
    assert c["mechanism"]["study"]["stacking"] == "stacked"
    assert c["mechanism"]["study"]["spin_share"] == pytest.approx(0.3)
    assert c["mechanism"]["tuned"]["stacking"] == "unbound"


def test_the_studys_figure_with_tuned_bare_metal_showing_none_of_it(tmp_path):
    # about 2.04x against the study's bare metal, give or take a few percent (repeats 4%
    # apart on each side); tuned 100 vs 100: no effect, exactly 1
    runs = {suite_study.STUDY_RUN: study_run(tmp_path, mz=((48.0, 50.0, 52.0),
                                                           (100.0, 102.0, 104.0)),
                                             tuned=(100.0, 100.0))}
    c = claim(suite.claims(runs, TOPO_2_NODES), "scaling")
    assert c["measured"] == pytest.approx(2.04, abs=0.005)
    assert 1.0 < c["ci95"][0] < 2.04 < c["ci95"][1] < 2.3
    assert c["verdict"] == "consistent with the study"
    assert c["tuned"]["measured"] == 1.0
    assert c["tuned"]["verdict"] == ("differs from the study: no measurable effect here (the "
                                     "interval includes 1)")
    assert "engine onnxruntime int8: the engine the suite ran" in c["note"]  # no study info
    lines = suite.claim_lines([c])
    assert lines[1].startswith("  scaling      study 2.04x   here 2.04x [")
    assert lines[3] == (f"  {'':<12} beside it: over tuned bare metal 1.00x [1.00, 1.00]: "
                        "differs from the study: no measurable effect here (the interval "
                        "includes 1) (pinned-tuned over shared-tuned at N=8)")


def test_the_why_says_only_what_was_read_back():
    stacked = {"stacking": "stacked", "cpus": ["0", "1"], "bound_by": [], "spin_share": None}
    assert suite_study.why(2, stacked, None) == [
        "the study's bare metal stacked the 2 instances thread by thread on the same CPUs 0,1 "
        "(thread k of every instance on CPU k)"]  # no side read back: nothing said of it
    assert suite_study.why(2, stacked, None, {"partitions": ["0-1"]}) == suite_study.why(
        2, stacked, None)  # one partition is no partitioning
    unbound = {**stacked, "stacking": "unbound"}
    assert suite_study.why(2, {**unbound, "spin_share": 0.049}, None) == []
    assert suite_study.why(2, {**unbound, "spin_share": 0.05}, {"spin_share": None}) == [
        "its runtimes spun 5% of their idle CPU time, CPU time the other instances on those "
        "CPUs needed"]


def test_without_the_mechanism_one_node_is_the_reason_left(tmp_path):
    runs = {suite_study.STUDY_RUN: study_run(tmp_path, stacked=False, spin=0.01)}
    c = claim(suite.claims(runs, {"nodes": [{}], "cores": 16}), "scaling")
    assert c["note"].split("; ")[0] == (
        "one NUMA node here, and the read-back shows neither stacked threads nor spinning: "
        "no mechanism left for the VM-like side to avoid")
    assert c["mechanism"]["study"]["stacking"] == "unbound"


def test_without_a_study_run_the_tuned_claim_stays_and_says_what_is_missing(tmp_path):
    runs = {"scaling": run(tmp_path, "s", SWEEP)}
    c = claim(suite.claims(runs, TOPO_1_NODE, {suite_study.STUDY_RUN: "no engine"}), "scaling")
    assert c["measured"] == pytest.approx(1.06) and c["against"] == "tuned bare metal"
    assert c["study_missing"] == "no engine"
    assert c["compared"] == "pinned over shared at N=8"
    lines = suite.claim_lines([c])
    assert lines[-1] == (f"  {'':<12} against the study's bare metal: not measured: no engine")
    c = claim(suite.claims(runs, TOPO_1_NODE), "scaling")
    assert c["study_missing"] == "its run is missing or incomplete"


def test_a_scaling_sweep_asked_with_model_zoo_is_the_study_run(tmp_path):
    runs = {"scaling": study_run(tmp_path, mz=(100.0, 125.0))}
    c = claim(suite.claims(runs, TOPO_2_NODES), "scaling")
    assert c["measured"] == pytest.approx(1.25) and c["instances"] == 8
    assert suite_study.study_run(runs) is runs["scaling"]
    assert suite_study.study_run({"scaling": run(tmp_path, "s", SWEEP)}) is None


# -- multistream ------------------------------------------------------------------------------

def styled(placement, layout, batch, p99, ips, style):
    return {**probe(placement, layout, batch, p99, ips), "threading": style}


def test_multistream_against_the_studys_bare_metal_and_tuned(tmp_path):
    probes = [styled("shared", "shared-tuned x2", 2, 20.0, 90.0, "tuned"),
              styled("shared", "shared-model-zoo x2", 1, 20.0, 50.0, "model-zoo"),
              styled("shared", "shared-model-zoo x2", 2, 40.0, 300.0, "model-zoo"),  # over
              styled("pinned", "pinned-tuned x2", 2, 20.0, 99.0, "tuned"),
              styled("pinned", "pinned-model-zoo x2", 2, 20.0, 100.0, "model-zoo")]
    ms = run(tmp_path, "m", probes, requested={"stat": "p99", "latency_bound_ms": 33.3},
             groups=[])
    c = claim(suite.claims({"multistream-int8": ms}, TOPO_2_NODES), "multistream")
    assert c["measured"] == pytest.approx(2.0)  # 100 over 50: the model-zoo pair
    assert c["compared"] == "pinned-model-zoo x2 batch 2 over shared-model-zoo x2 batch 1"
    assert c["tuned"]["measured"] == pytest.approx(1.10)  # 99 over 90
    assert c["against"] == "the study's bare metal (--threading model-zoo)"


def test_multistream_without_model_zoo_says_how_to_measure_it(tmp_path):
    probes = [probe("shared", "s", 1, 10.0, 100.0), probe("pinned", "p", 1, 10.0, 110.0)]
    ms = run(tmp_path, "m", probes, requested={"stat": "p99", "latency_bound_ms": 33.3},
             groups=[])
    c = claim(suite.claims({"multistream-int8": ms}, TOPO_2_NODES), "multistream")
    assert c["measured"] == pytest.approx(1.10) and c["against"] == "tuned bare metal"
    assert c["study_missing"] == suite_study.MULTISTREAM_MISSING
    assert "--threading tuned,model-zoo" in c["study_missing"]


# -- which engine, and the run it makes ---------------------------------------------------------

def test_the_engine_that_binds_and_spins_itself_is_picked_unless_one_is_asked():
    def can_run(engine, precision):
        return None if (engine, precision) != ("onnxruntime", "int8") else "no int8 here"

    picked = suite_study.pick_engine(None, ("int8", "fp32"), can_run)
    assert (picked.engine, picked.precision) == ("onnxruntime", "fp32")  # int8 refused
    assert picked.why.startswith("onnxruntime: its intra-op pool binds thread k to core k")
    asked = suite_study.pick_engine("tflite", ("int8", "fp32"), can_run)
    assert (asked.engine, asked.precision) == ("tflite", "int8")
    assert asked.why.startswith("tflite, asked with --engine: its runtime binds no thread")
    null = suite_study.pick_engine("null", ("fp32",), can_run)
    assert "no runtime threads" in null.why
    only_default = suite_study.pick_engine(
        None, ("int8",), lambda e, p: None if e is None else "not installed")
    assert only_default.engine is None and only_default.why.startswith("no engine here binds")
    assert suite_study.pick_engine(None, ("int8",), lambda e, p: "no") is None
    assert suite_study.pick_engine("tf", ("int8",), lambda e, p: "no") is None


def test_the_study_run_is_one_count_both_styles_bare_metal_and_the_first_vm_like_side():
    def make(scenario, **options):
        return (scenario, options)

    runs = suite.experiments(make, ("pinned", "vm"), ("fp32", "int8"), {}, "int8",
                             study={"engine": "onnxruntime", "precision": "int8",
                                    "instances": 8, "why": "w"})
    names = [e.name for e in runs]
    assert names.index("scaling-model-zoo") == names.index("scaling") + 1
    (e,) = [e for e in runs if e.name == "scaling-model-zoo"]
    assert e.scenario == "scaling"
    assert e.settings[1] == {"placement": "shared,pinned", "precision": "int8",
                             "engine": "onnxruntime", "instances": "8",
                             "threading": "tuned,model-zoo", "experiment": "scaling-model-zoo"}
    assert "scaling-model-zoo" not in [e.name for e in suite.experiments(
        make, ("pinned",), ("fp32",), {})]


def test_a_suite_that_sweeps_styles_claims_latency_within_one_style(tmp_path):
    # bare metal's first point is model-zoo's: a claim mixing styles would read -47.5%
    pts = [point("shared", latency=(20.0, 20.0), threading="model-zoo"),
           point("shared", latency=(10.0, 10.0), threading="tuned"),
           point("pinned", latency=(10.5, 10.5), threading="tuned"),
           point("pinned", latency=(30.0, 30.0), threading="model-zoo")]
    c = claim(suite.claims({"latency": run(tmp_path, "l", pts)}, TOPO_1_NODE), "latency")
    assert c["measured"] == pytest.approx(5.0)
    assert suite_study.one_style(pts) == pts[1:3]
    defaults = [{**p, "threading": "defaults"} for p in pts[1:3]]
    assert suite_study.one_style([pts[0], *defaults]) == defaults  # no tuned: not the study's
