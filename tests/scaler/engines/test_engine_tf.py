"""The tf engine, for real on the tiny model (in process, one thread setting)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scaler.engines import EngineError, load_engine


@pytest.mark.parametrize("batch", [1, 4])
def test_tiny_fp32(spec, batch):
    engine = load_engine(spec(batch=batch))
    inputs = engine.make_input()
    assert tuple(inputs.shape) == (batch, 32, 32, 3)
    assert engine._fn(inputs).shape == (batch, 10)  # the output, as infer computes it
    assert engine.infer(inputs) is None
    info = engine.info
    assert info["engine"] == "tf" and info["precision"] == "fp32" and info["model"] == "tiny"
    assert info["input_shape"] == [batch, 32, 32, 3]
    assert info["params"] > 0 and info["load_s"] > 0
    threads = engine.spec.threads
    assert info["intra_op_threads"] == threads and info["inter_op_threads"] == threads
    assert info["onednn"] is True and info["tf_version"] and info["keras_version"]
    engine.close()


def test_inputs_are_seeded(spec):
    first, again = load_engine(spec(seed=3)), load_engine(spec(seed=3))
    other = load_engine(spec(seed=4))
    assert (first.make_input().numpy() == again.make_input().numpy()).all()
    assert not (first.make_input().numpy() == other.make_input().numpy()).all()


@pytest.mark.parametrize("kind", ["keras", "savedmodel"])
def test_user_model(spec, user_models, kind):
    engine = load_engine(spec(model=user_models[kind], batch=4))
    engine.infer(engine.make_input())
    assert engine.info["input_shape"] == [4, 32, 32, 3]
    assert engine.info["params"] == load_engine(spec()).info["params"]


def test_damaged_keras_file(spec, tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(EngineError, match="cannot load Keras model"):
        load_engine(spec(model=str(path)))


def test_threads_are_set_before_any_op():
    """In a fresh process the engine's thread counts reach TF; a later change is refused."""
    code = (
        "import json\n"
        "from scaler.engines import EngineError, EngineSpec, load_engine\n"
        "e = load_engine(EngineSpec(model='tiny', threads=2, inter_op_threads=1))\n"
        "e.infer(e.make_input())\n"
        "try:\n"
        "    load_engine(EngineSpec(model='tiny', threads=1))\n"
        "    refused = ''\n"
        "except EngineError as exc:\n"
        "    refused = str(exc)\n"
        "print(json.dumps([e.info['intra_op_threads'], e.info['inter_op_threads'], refused]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True
    )
    intra, inter, refused = json.loads(out.stdout.splitlines()[-1])
    assert (intra, inter) == (2, 1)
    assert "threads already fixed in this process to 2 intra-op; cannot use 1" in refused
