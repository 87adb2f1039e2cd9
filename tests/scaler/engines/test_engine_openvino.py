"""The openvino engine for real on the tiny model: conversion and NNCF int8 in the conversion
child, the IR cache, user .xml/.onnx files, what OpenVINO reports it executed, the worker in
pinned and shared placements, and the bf16 refusal on CPUs without bf16.

The engine's ``info`` is read back from OpenVINO's compiled model, so the assertions on it
check what OpenVINO did with scaler's request (streams, threads, pinning, precision), not
what scaler asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from affinity import read_topology
from scaler.engines import EngineError, check_spec, load_engine
from scaler.engines.registry import BF16_ISA
from tests.scaler.engines.conftest import THREADS
from tests.scaler.helpers import processes, scaler_cmd

ISA = read_topology().isa
HAS_BF16 = bool(set(BF16_ISA) & set(ISA))
NO_BF16_REASON = f"bf16 runs only on a CPU with {' or '.join(BF16_ISA)}; this one has neither"
SHORT = ["--min-duration", "1", "--min-queries", "5", "--warmup", "0.2"]


def output_shape(engine) -> tuple[int, ...]:
    return tuple(engine._request.get_output_tensor(0).shape)


def check_compiled(info: dict, threads: int, precision: str) -> None:
    """What OpenVINO read back: one stream, the partition's threads, its pinning off, the
    asked precision executed by the compute layers."""
    compiled = info["compiled"]
    assert compiled["NUM_STREAMS"] == 1
    assert compiled["INFERENCE_NUM_THREADS"] == threads
    assert compiled["ENABLE_CPU_PINNING"] is False
    assert compiled["INFERENCE_PRECISION_HINT"] == ("bf16" if precision == "bf16" else "f32")
    assert compiled["OPTIMAL_NUMBER_OF_INFER_REQUESTS"] == 1 and info["infer_requests"] == 1
    assert list(info["executed_precisions"]) == [precision]  # every compute layer
    assert info["layer_precisions"]["Convolution"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("batch", [1, 4])
def test_tiny(spec, openvino_cache, precision, batch):
    folder, _ = openvino_cache
    engine = load_engine(spec(engine="openvino", precision=precision, batch=batch,
                              cache_dir=folder))
    inputs = engine.make_input()
    assert inputs.shape == (batch, 32, 32, 3) and inputs.dtype.name == "float32"
    assert engine.infer(inputs) is None
    engine.infer(inputs)  # the inputs stay bound to the request
    assert output_shape(engine) == (batch, 10)
    info = engine.info
    assert (info["engine"], info["precision"], info["model"]) == ("openvino", precision, "tiny")
    assert info["input_shape"] == [batch, 32, 32, 3]
    assert info["cache"] == "hit" and info["conversion_s"] is None
    assert info["ir_precision"] == precision and info["converted_with"]["openvino"]
    check_compiled(info, THREADS, precision)
    # int8: NNCF quantized the convolutions and the dense layer to u8/i8
    if precision == "int8":
        assert set(info["layer_precisions"]["Convolution"]) <= {"u8", "i8"}
    engine.close()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_second_load_hits_the_cache(spec, openvino_cache, precision):
    folder, first = openvino_cache
    assert first[precision]["cache"] == "miss" and first[precision]["conversion_s"] > 0
    path = Path(first[precision]["cache_path"])
    assert path.parent == Path(folder) and path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["model.bin", "model.xml"]
    assert f"-{precision}-ov" in path.name
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in path.iterdir()}
    info = load_engine(spec(engine="openvino", precision=precision, cache_dir=folder)).info
    assert (info["cache"], info["cache_path"]) == ("hit", str(path))
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in path.iterdir()} == before


def test_bf16_runs_the_fp32_ir(openvino_cache):
    """bf16 is a precision hint on the fp32 IR: no entry of its own (checked here without
    running bf16, which needs the CPU)."""
    from scaler.engines.base import EngineSpec
    from scaler.engines.openvino_ir import entry_path

    folder, first = openvino_cache
    bf16 = EngineSpec(engine="openvino", model="tiny", precision="bf16", cache_dir=folder)
    assert str(entry_path(bf16)) == first["fp32"]["cache_path"]


@pytest.mark.skipif(not HAS_BF16, reason=NO_BF16_REASON)
def test_bf16_where_the_cpu_has_it(spec, openvino_cache):
    folder, _ = openvino_cache
    engine = load_engine(spec(engine="openvino", precision="bf16", batch=2, cache_dir=folder))
    engine.infer(engine.make_input())
    assert output_shape(engine) == (2, 10)
    check_compiled(engine.info, THREADS, "bf16")


@pytest.mark.skipif(HAS_BF16, reason="this CPU has bf16: nothing to refuse")
def test_bf16_is_refused_here_in_one_line():
    r = scaler_cmd("latency", "--engine", "openvino", "--precision", "bf16", "--model", "tiny")
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bf16 needs a CPU with avx512_bf16 or amx_bf16" in lines[0]


@pytest.mark.parametrize("damage", ["truncate_bin", "flip_xml", "missing_bin", "no_sidecar"])
def test_damaged_entry_is_rebuilt(spec, openvino_cache, tmp_path, damage):
    folder, first = openvino_cache
    entry = Path(first["fp32"]["cache_path"])
    shutil.copytree(entry, tmp_path / entry.name)
    shutil.copy(entry.with_suffix(".json"), tmp_path / f"{entry.with_suffix('.json').name}")
    copy = tmp_path / entry.name
    xml, weights = copy / "model.xml", copy / "model.bin"
    if damage == "truncate_bin":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "flip_xml":
        xml.write_text(xml.read_text().replace("<layers>", "<layers >", 1))
    elif damage == "missing_bin":
        weights.unlink()
    else:
        copy.with_suffix(".json").unlink()
    engine = load_engine(spec(engine="openvino", cache_dir=str(tmp_path)))
    engine.infer(engine.make_input())
    assert engine.info["cache"] == "rebuilt" and engine.info["conversion_s"] > 0
    # the rebuilt IR is the same model: same weights, byte for byte
    assert weights.read_bytes() == (entry / "model.bin").read_bytes()


def test_cached_worker_imports_neither_tensorflow_nor_nncf(openvino_cache, run_python):
    folder, _ = openvino_cache
    info, heavy = run_python(textwrap.dedent(f"""
        import json, sys
        from scaler.engines import EngineSpec, load_engine
        e = load_engine(EngineSpec(engine="openvino", model="tiny", precision="int8",
                                   cache_dir={folder!r}))
        e.infer(e.make_input())
        info = {{k: e.info[k] for k in ("cache", "engine", "executed_precisions")}}
        print(json.dumps([info, [m for m in ("tensorflow", "keras", "nncf")
                                  if m in sys.modules]]))
    """))
    assert info == {"cache": "hit", "engine": "openvino", "executed_precisions": info[
        "executed_precisions"]} and list(info["executed_precisions"]) == ["int8"]
    assert heavy == []


def test_workers_starting_together_convert_once(tmp_path):
    code = textwrap.dedent(f"""
        from scaler.engines import EngineSpec, load_engine
        e = load_engine(EngineSpec(model="tiny", engine="openvino",
                                   cache_dir={str(tmp_path)!r}))
        print(e.info["cache"])
    """)
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        outcomes = sorted(w.communicate(timeout=180)[0].split()[-1] for w in workers)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
    assert outcomes == ["hit", "miss"]
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".ir"]) == 1


def test_user_xml(spec, openvino_cache, tmp_path):
    """A user's IR runs as it is in fp32; int8 quantizes it in the child (cached, keyed by
    its content); an already quantized IR runs as int8 only."""
    folder, first = openvino_cache
    fp32, int8 = (Path(first[p]["cache_path"]) for p in ("fp32", "int8"))
    for stem, entry in (("mine", fp32), ("mine_q", int8)):
        for part in ("xml", "bin"):
            shutil.copy(entry / f"model.{part}", tmp_path / f"{stem}.{part}")
    mine, quantized = str(tmp_path / "mine.xml"), str(tmp_path / "mine_q.xml")
    resolved = check_spec(spec(model=mine, batch=3), ISA)
    assert resolved.engine == "openvino"
    engine = load_engine(resolved)
    engine.infer(engine.make_input())
    assert output_shape(engine) == (3, 10)
    assert (engine.info["model"], engine.info["cache"]) == ("mine.xml", "user")
    check_compiled(engine.info, THREADS, "fp32")

    cache_dir = str(tmp_path / "cache")
    info = load_engine(spec(model=mine, precision="int8", cache_dir=cache_dir)).info
    assert info["cache"] == "miss" and list(info["executed_precisions"]) == ["int8"]
    assert os.path.basename(info["cache_path"]).startswith("mine.xml-")
    assert "-tf" not in os.path.basename(info["cache_path"])  # no TensorFlow in its recipe

    info = load_engine(spec(model=quantized, precision="int8")).info
    assert (info["cache"], list(info["executed_precisions"])) == ("user", ["int8"])
    with pytest.raises(EngineError, match="'mine_q.xml' is quantized .*: use int8"):
        load_engine(spec(model=quantized, engine="openvino"))


def tiny_onnx(path: Path) -> None:
    """A small CNN written with the onnx package: NCHW, dynamic batch, float32."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (16, 8, 3, 3)),
                                   ("fc", (16, 10)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny_onnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_user_onnx(spec, tmp_path):
    mine = tmp_path / "mine.onnx"
    tiny_onnx(mine)
    resolved = check_spec(spec(model=str(mine), batch=2, engine="openvino"), ISA)
    assert resolved.engine == "openvino"  # .onnx alone picks onnxruntime
    engine = load_engine(resolved)
    engine.infer(engine.make_input())
    assert engine.info["input_shape"] == [2, 3, 32, 32] and output_shape(engine) == (2, 10)
    assert (engine.info["model"], engine.info["cache"]) == ("mine.onnx", "user")
    check_compiled(engine.info, THREADS, "fp32")
    with pytest.raises(EngineError, match="a onnx model runs on the openvino or onnxruntime"):
        check_spec(spec(model=str(mine), engine="tf"), ISA)


def test_damaged_user_model_is_a_clear_error(spec, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<net><layers>")
    with pytest.raises(EngineError, match="cannot read OpenVINO model .*bad.xml"):
        load_engine(spec(model=str(bad)))


@pytest.mark.parametrize(("args", "needle"), [
    (["--engine", "openvino", "--precision", "fp16"], "unknown precision 'fp16'"),
    (["--engine", "openvino", "--model", "/no/such/model.xml"], "/no/such/model.xml"),
    (["--engine", "tf", "--model", "{xml}"], "a xml model runs only on the openvino engine"),
])
def test_unsupported_request_is_one_line_exit_2(tmp_path, args, needle):
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    args = [a.replace("{xml}", str(xml)) for a in args]
    if "--model" not in args:
        args += ["--model", "tiny"]
    r = scaler_cmd("latency", *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_worker_in_pinned_and_shared_placements(openvino_cache, tmp_path, precision):
    """The real worker through the CLI: pinned instances get one CPU and one OpenVINO
    thread each, shared ones every CPU; OpenVINO reports the same back."""
    folder, _ = openvino_cache
    r = scaler_cmd("scaling", "--engine", "openvino", "--precision", precision, "--model", "tiny",
                   "--instances", "2", "--placement", "shared,pinned", *SHORT,
                   "--cache-dir", folder, "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    doc = json.loads((Path(summary["run"]) / "run.json").read_text())
    cpus = len(os.sched_getaffinity(0))
    groups = {g["placement"]: g for g in doc["groups"]}
    assert set(groups) == {"shared", "pinned"}
    for placement, group in groups.items():
        assert group["status"] == "complete" and group["throughput_ips"] > 0
        for inst in group["per_instance"]:
            threads = 1 if placement == "pinned" and cpus >= 2 else cpus
            assert inst["threads"] == threads
            assert inst["engine"]["engine"] == "openvino" and inst["engine"]["cache"] == "hit"
            check_compiled(inst["engine"], threads, precision)
    pinned = groups["pinned"]["per_instance"]
    if cpus >= 2:
        assert sorted(c for i in pinned for c in i["binding"]["cpus"]) == [0, 1]
    # nothing outlives the command: not the workers, nor a child one of them forked (OpenVINO's
    # usage telemetry once forked one per worker that hung without internet and stayed)
    left = [pid for pid, (_, cmd) in processes().items() if folder.encode() in cmd]
    assert left == [], left
