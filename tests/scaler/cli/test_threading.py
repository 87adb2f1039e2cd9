"""``--threading`` end to end: real workers, the tiny model, CPU lists read back (no times)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from affinity.cpulist import parse_cpulist
from tests.scaler.helpers import scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

SHORT = ["--min-duration", "0.3", "--min-queries", "5", "--warmup", "0.5"]
ENGINE = "openvino"  # expresses every style; switch to onnxruntime once it is merged


def _groups(doc: dict, placement: str, style: str) -> list[dict]:
    return [g for g in doc["groups"] if g["placement"] == placement and g["threading"] == style
            and g["instances"] == 2]


def test_model_zoo_stacks_unpinned_instances_tuned_does_not_pinned_stay_apart(tmp_path):
    r = scaler_cmd("scaling", "--engine", ENGINE, "--model", "tiny", "--instances", "2",
                   "--placement", "shared,pinned", "--threading", "tuned,model-zoo", *SHORT,
                   "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    labels = {s["label"] for s in summary["series"]}
    assert labels == {"shared-tuned", "shared-model-zoo", "pinned-tuned", "pinned-model-zoo"}
    # pinned over shared under the same style, never across styles
    pairs = {(c["placement"], c["baseline"]) for c in summary["comparisons"]}
    assert pairs == {("pinned-tuned", "shared-tuned"), ("pinned-model-zoo", "shared-model-zoo")}
    doc = json.loads((Path(summary["run"]) / "run.json").read_text())
    assert doc["requested"]["threading"] == ["tuned", "model-zoo"]

    # model-zoo, unpinned: every instance's compute thread k on the same CPU k (stacked)
    (zoo,) = _groups(doc, "shared", "model-zoo")
    backs = [i["thread_readback"] for i in zoo["per_instance"]]
    assert all(b["per_thread_bound"] for b in backs)
    assert backs[0]["bound_cpus"] == backs[1]["bound_cpus"]
    assert backs[0]["bound_cpus"][0] == "0"  # thread 0 of each instance on CPU 0
    # tuned, unpinned: no compute thread bound to fewer CPUs than its process
    (tuned,) = _groups(doc, "shared", "tuned")
    for inst in tuned["per_instance"]:
        back = inst["thread_readback"]
        assert not back["per_thread_bound"]
        assert inst["spin"]["share"] is not None
    # pinned (either style): each instance's threads inside its own partition, apart
    for style in ("tuned", "model-zoo"):
        (pinned,) = _groups(doc, "pinned", style)
        seen: set[int] = set()
        for inst in pinned["per_instance"]:
            own = set(inst["binding"]["cpus"])
            assert not own & seen
            seen |= own
            for t in inst["thread_readback"]["threads"]:
                assert set(parse_cpulist(t["cpus"])) <= own
    # `show` says it in one line per group
    shown = scaler_cmd("show", summary["run"])
    assert shown.returncode == 0, shown.stderr
    zoo_line = [ln for ln in shown.stdout.splitlines()
                if ln.strip().startswith("threads shared-model-zoo x2")]
    assert len(zoo_line) == 1 and "stacked" in zoo_line[0] and "spin" in zoo_line[0]
    tuned_line = [ln for ln in shown.stdout.splitlines()
                  if ln.strip().startswith("threads shared-tuned x2")]
    assert len(tuned_line) == 1 and "not pinned per thread" in tuned_line[0]
    assert any("threads pinned-model-zoo x2" in ln and "inside its own CPUs" in ln
               for ln in shown.stdout.splitlines())


@pytest.mark.parametrize("args, needle", [
    (["scaling", "--threading", "spinny"], "unknown --threading style 'spinny'"),
    (["scaling", "--threading", "tuned,"], "unknown --threading style '(empty)'"),
    (["latency", "--threading", "tuned,tuned"], "names a style twice"),
    (["multistream", "--threading", "Model-Zoo"], "unknown --threading style"),
    (["server", "--threading", "fast"], "unknown --threading style"),
    (["suite", "--threading", "fast"], "unknown --threading style"),
])
def test_bad_style_is_one_line_exit_2(args, needle, tmp_path):
    r = scaler_cmd(*args, "--engine", "null", "--model", "tiny", "--out", str(tmp_path))
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not list(tmp_path.iterdir())  # refused before any worker or run folder


def test_a_style_the_engine_cannot_express_is_refused_before_any_worker(tmp_path):
    # the test plug-in's engine leaves EngineType.threading at its default: tuned only
    r = scaler_cmd("scaling", "--engine", "sleepy", "--model", "tiny", "--instances", "1",
                   "--threading", "tuned,model-zoo", "--out", str(tmp_path),
                   env={"SCALER_PLUGINS": "tests.scaler.plugin_example"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "engine sleepy cannot express --threading model-zoo" in lines[0]
    assert not list(tmp_path.iterdir())
