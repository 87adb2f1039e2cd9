"""The tf engine, for real on the tiny model (in process, one thread setting)."""

from __future__ import annotations

import textwrap

import numpy as np
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


def test_fp32_graph_matches_eager(spec):
    engine = load_engine(spec(batch=4))
    inputs = engine.make_input()
    graph = engine._fn(inputs).numpy()
    eager = engine._model.keras_model(inputs, training=False).numpy()
    assert np.abs(graph - eager).max() < 1e-5 * np.abs(eager).max()


def test_threads_are_set_before_any_op(run_python):
    """In a fresh process the engine's thread counts reach TF; a later change is refused."""
    intra, inter, refused = run_python(
        textwrap.dedent("""
        import json
        from scaler.engines import EngineError, EngineSpec, load_engine
        e = load_engine(EngineSpec(model="tiny", threads=2, inter_op_threads=1))
        e.infer(e.make_input())
        try:
            load_engine(EngineSpec(model="tiny", threads=1))
            refused = ""
        except EngineError as exc:
            refused = str(exc)
        print(json.dumps([e.info["intra_op_threads"], e.info["inter_op_threads"], refused]))
    """)
    )
    assert (intra, inter) == (2, 1)
    assert "threads already fixed in this process to 2 intra-op; cannot use 1" in refused


def test_bf16(run_python):
    """bf16 really runs in bf16 (the graph drifts from the fp32 eager model by bf16 rounding,
    unlike fp32 above), at batch 1 and 4; a later fp32 engine in that process is refused."""
    result = run_python(
        textwrap.dedent("""
        import json
        import numpy as np
        from scaler.engines import EngineError, EngineSpec, load_engine
        out = {}
        for batch in (1, 4):
            e = load_engine(EngineSpec(model="tiny", precision="bf16", batch=batch))
            x = e.make_input()
            assert e.infer(x) is None
            graph = e._fn(x).numpy()
            eager = e._model.keras_model(x, training=False).numpy()
            out[batch] = [list(graph.shape), float(np.abs(graph - eager).max()),
                          float(np.abs(eager).max()), e.info]
        try:
            load_engine(EngineSpec(model="tiny"))
        except EngineError as exc:
            out["refused"] = str(exc)
        print(json.dumps(out))
    """)
    )
    for batch in ("1", "4"):
        shape, drift, scale, info = result[batch]
        assert shape == [int(batch), 10]
        assert 1e-4 * scale < drift < 5e-2 * scale
        assert info["precision"] == "bf16"
        assert info["bf16_method"] == "onednn_auto_mixed_precision"
    assert result["refused"] == "this process already runs bf16 TF graphs; fp32 needs a new process"
