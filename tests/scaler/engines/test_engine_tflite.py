"""The tflite engine for real on the tiny model: conversion, cache, user files, no TF import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from scaler.engines import EngineError, check_spec, load_engine


def output_shape(engine) -> tuple[int, ...]:
    interpreter = engine._interpreter
    return tuple(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("batch", [1, 4])
def test_tiny(spec, tflite_cache, precision, batch):
    folder, _ = tflite_cache
    engine = load_engine(spec(engine="tflite", precision=precision, batch=batch, cache_dir=folder))
    inputs = engine.make_input()
    assert inputs.shape == (batch, 32, 32, 3)
    assert inputs.dtype.name == ("float32" if precision == "fp32" else "int8")
    assert engine.infer(inputs) is None
    assert output_shape(engine) == (batch, 10)
    info = engine.info
    assert (info["engine"], info["precision"], info["model"]) == ("tflite", precision, "tiny")
    assert info["input_shape"] == [batch, 32, 32, 3] and info["xnnpack"] is True
    assert info["cache"] == "hit" and info["conversion_s"] is None
    assert info["converted_with_tf"] and info["litert_version"]
    engine.close()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_second_load_hits_the_cache(spec, tflite_cache, precision):
    folder, first = tflite_cache
    assert first[precision]["cache"] == "miss" and first[precision]["conversion_s"] > 0
    path = first[precision]["cache_path"]
    assert os.path.dirname(path) == folder
    assert f"-{precision}-tf" in os.path.basename(path)
    before = os.stat(path).st_mtime_ns, os.stat(path).st_ino
    info = load_engine(spec(engine="tflite", precision=precision, cache_dir=folder)).info
    assert (info["cache"], info["cache_path"]) == ("hit", path)
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == before


def test_corrupt_cache_file_is_rebuilt(spec, tflite_cache, tmp_path):
    folder, first = tflite_cache
    name = os.path.basename(first["fp32"]["cache_path"])
    for file in (name, name.replace(".tflite", ".json")):
        shutil.copy(os.path.join(folder, file), tmp_path / file)
    damaged = tmp_path / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    engine = load_engine(spec(engine="tflite", cache_dir=str(tmp_path)))
    engine.infer(engine.make_input())
    assert engine.info["cache"] == "rebuilt" and engine.info["conversion_s"] > 0
    assert damaged.read_bytes() == open(first["fp32"]["cache_path"], "rb").read()


def test_cached_worker_does_not_import_tensorflow(tflite_cache, run_python):
    folder, _ = tflite_cache
    info, heavy = run_python(
        textwrap.dedent(f"""
        import json, sys
        from scaler.engines import EngineSpec, load_engine
        e = load_engine(EngineSpec(model="tiny", precision="int8", cache_dir={folder!r}))
        e.infer(e.make_input())
        print(json.dumps([e.info, "tensorflow" in sys.modules]))
    """)
    )
    assert info["cache"] == "hit" and info["engine"] == "tflite" and heavy is False


def test_user_tflite_file(spec, tflite_cache, tmp_path):
    _, first = tflite_cache
    mine = str(tmp_path / "mine.tflite")
    shutil.copy(first["int8"]["cache_path"], mine)
    resolved = check_spec(spec(model=mine, precision="int8", batch=4), ("avx512_vnni",))
    engine = load_engine(resolved)
    engine.infer(engine.make_input())
    assert output_shape(engine) == (4, 10)
    info = engine.info
    assert (info["engine"], info["model"], info["cache"]) == ("tflite", "mine.tflite", "user")
    with pytest.raises(EngineError, match="'mine.tflite' takes int8 input: use int8"):
        load_engine(spec(model=mine, precision="fp32", engine="tflite"))


def test_user_keras_file_is_converted(spec, user_models, tmp_path):
    engine = load_engine(spec(engine="tflite", model=user_models["keras"], cache_dir=str(tmp_path)))
    engine.infer(engine.make_input())
    info = engine.info
    assert (info["model"], info["cache"]) == ("tiny.keras", "miss")
    # keyed by content: the name, a hash of the file, precision, TF version, recipe
    assert os.path.basename(info["cache_path"]).startswith("tiny.keras-")
    assert len(os.path.basename(info["cache_path"]).split("-")[1]) == 16


def test_workers_starting_together_convert_once(tmp_path):
    code = textwrap.dedent(f"""
        from scaler.engines import EngineSpec, load_engine
        e = load_engine(EngineSpec(model="tiny", engine="tflite", cache_dir={str(tmp_path)!r}))
        print(e.info["cache"])
    """)
    workers = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        outcomes = sorted(worker.communicate(timeout=120)[0].split()[-1] for worker in workers)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
    assert outcomes == ["hit", "miss"]


def test_unwritable_cache_folder(spec, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EngineError, match="cannot use the model cache"):
        load_engine(spec(engine="tflite", cache_dir=str(blocker / "cache")))
