"""check_spec: defaults, unsupported pairs and bad models, all without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scaler.engines import EngineError, EngineSpec, check_spec, load_engine

ZEN5 = ("avx512f", "avx512_vnni", "avx512_bf16")
NO_BF16 = ("avx2", "avx512f", "avx512_vnni")


@pytest.mark.parametrize(
    ("precision", "engine"), [("fp32", "tf"), ("bf16", "tf"), ("int8", "tflite")]
)
def test_default_engine_per_precision(precision, engine):
    assert check_spec(EngineSpec(precision=precision), ZEN5).engine == engine


def test_tflite_path_implies_tflite_engine(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"")
    assert check_spec(EngineSpec(model=str(path), precision="int8"), ZEN5).engine == "tflite"
    with pytest.raises(EngineError, match="runs only on the tflite engine"):
        check_spec(EngineSpec(engine="tf", model=str(path)), ZEN5)


@pytest.mark.parametrize(
    ("engine", "precision", "message"),
    [
        (
            "tf",
            "int8",
            "engine tf does not support int8; it supports fp32, bf16 "
            r"\(tflite, openvino and onnxruntime support int8\)",
        ),
        (
            "tflite",
            "bf16",
            "engine tflite does not support bf16; it supports fp32, int8 "
            r"\(tf and openvino supports? bf16\)",
        ),
        ("onnxrt", "fp32",
         "unknown engine 'onnxrt'; choose one of tf, tflite, openvino, onnxruntime, null"),
        ("tf", "fp16", "unknown precision 'fp16'; choose one of fp32, bf16, int8"),
    ],
)
def test_unsupported_pairs(engine, precision, message):
    with pytest.raises(EngineError, match=message):
        check_spec(EngineSpec(engine=engine, precision=precision), ZEN5)


def test_bf16_needs_the_isa():
    with pytest.raises(EngineError, match="bf16 needs a CPU with avx512_bf16 or amx_bf16"):
        check_spec(EngineSpec(precision="bf16"), NO_BF16)
    assert check_spec(EngineSpec(precision="bf16"), ("amx_bf16",)).engine == "tf"
    # the null engine infers nothing, so any precision label runs
    assert check_spec(EngineSpec(engine="null", precision="bf16"), NO_BF16).engine == "null"


def test_bf16_needs_onednn(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with pytest.raises(EngineError, match="needs oneDNN: unset TF_ENABLE_ONEDNN_OPTS=0"):
        check_spec(EngineSpec(precision="bf16"), ZEN5)
    assert check_spec(EngineSpec(precision="fp32"), ZEN5).engine == "tf"


def test_bad_models(tmp_path):
    with pytest.raises(EngineError, match="neither a built-in model .*nor an existing path"):
        check_spec(EngineSpec(model=str(tmp_path / "missing.keras")), ZEN5)
    with pytest.raises(EngineError, match="not a .keras file, a .tflite file, a .xml file, "
                                          "a .onnx file or a SavedModel"):
        check_spec(EngineSpec(model=str(tmp_path)), ZEN5)


@pytest.mark.parametrize("field", ["batch", "threads", "inter_op_threads"])
def test_counts_must_be_positive(field):
    with pytest.raises(EngineError, match=f"{field} must be at least 1, got 0"):
        check_spec(EngineSpec(**{field: 0}), ZEN5)


def test_load_engine_repeats_the_checks():
    with pytest.raises(EngineError, match="engine tf does not support int8"):
        load_engine(EngineSpec(engine="tf", precision="int8", model="tiny"))


def test_null_engine_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import scaler.engines as e\n"
        "assert 'tensorflow' not in sys.modules and 'numpy' not in sys.modules\n"
        "engine = e.load_engine(e.EngineSpec(engine='null', batch=4))\n"
        "engine.infer(engine.make_input())\n"
        "assert engine.info['engine'] == 'null'\n"
        "assert 'tensorflow' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
