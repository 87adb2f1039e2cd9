"""The onnxruntime anchor: a real round of scaler and of the bare ``InferenceSession.run``
loop on the tiny model, and its row in the bench table (judged from raw figures)."""

from __future__ import annotations

import pytest

from affinity import plan, read_topology
from scaler.bench import report

WHOLE = plan(read_topology(), 1).partitions[0]
CPUS = list(WHOLE.cpus)


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_bare_loop_runs_the_workers_file_and_options_on_the_same_cpus(tmp_path, ort_cache):
    """On the session's ONNX cache (tests/scaler/conftest.py): a fresh one cost the test a
    TensorFlow export; what it checks is the pairs, not the conversion."""
    from scaler.bench.ort_anchor import measure_anchor

    r = measure_anchor("fp32", "tiny", 2, CPUS, rounds=2, seconds=0.3, warmup_s=0.1,
                       workdir=tmp_path, cache_dir=ort_cache[0])
    assert [p["order"][0] for p in r["pairs"]] == ["scaler", "bare"]
    for pair in r["pairs"]:
        scaler, bare = pair["scaler"], pair["bare"]
        assert scaler["cpus"] == bare["cpus"] == CPUS
        assert scaler["onnx"] == r["onnx"] and r["onnx"] in bare["command"]
        # the bare session holds what the worker's session held (read back on both sides)
        assert bare["session"]["intra_op_num_threads"] == len(CPUS)
        assert bare["session"]["config"] == scaler["session"]["config"]
        assert bare["session"]["config"]["session.intra_op.allow_spinning"] == "0"
        assert scaler["images_per_s"] > 0 and bare["images_per_s"] > 0 and bare["iterations"]
    assert r["ratio_min"] <= r["median_ratio"] <= r["ratio_max"] and r["rounds"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".anchor-ort-")]


def test_ort_anchor_row_is_judged_like_benchmark_apps():
    run = {"precision": "int8", "batch": 32, "ratio_min": 0.90, "ratio_max": 0.95,
           "median_ratio": 0.93, "range_confidence": 0.9375, "rounds": 5, "seconds": 10,
           "scaler_images_per_s": 90.0, "tool_images_per_s": 97.0}
    rows = report.rows({"sections": {"anchor_ort": {"engine": "onnxruntime", "runs": [run]}}})
    (row,) = [r for r in rows if r["section"] == "anchor"]
    assert row["figure"] == "scaler / bare run loop images/s, onnxruntime int8 batch 32"
    assert row["met"] is False and "bare run loop 97.0 images/s" in row["value"]
