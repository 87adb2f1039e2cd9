"""The onnxruntime engine for real on the tiny model: Keras -> ONNX export and int8 QDQ in the
conversion child, the cache, the ``--threading`` styles' session options and where ORT's
threads may run (read back from ``/proc/self/task/*/status`` by the tests themselves, judged
on CPU lists, never on speed), user ``.onnx`` files, the CLI, and bad input.

In-process tests use the ``tuned`` and ``defaults`` styles only: ``model-zoo`` binds the
calling thread, so it runs in a fresh Python each time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from affinity import read_topology
from scaler.engines import EngineError, EngineSpec, check_spec, load_engine
from scaler.engines import ort_threading as ot
from scaler.engines.registry import EngineType, register
from tests.scaler.helpers import scaler_cmd

ISA = read_topology().isa
CPUS = sorted(os.sched_getaffinity(0))
SHORT = ["--min-duration", "0.5", "--min-queries", "5", "--warmup", "0.2"]


def ort_spec(**fields) -> EngineSpec:
    return EngineSpec(**{"engine": "onnxruntime", "model": "tiny", "threads": 1, **fields})


def tasks() -> dict[int, list[int]]:
    """Every thread of this process and its allowed CPUs, read here (not by the engine)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        status = Path(f"/proc/self/task/{tid}/status").read_text()
        line = next(ln for ln in status.splitlines() if ln.startswith("Cpus_allowed_list:"))
        cpus: list[int] = []
        for part in line.split(":", 1)[1].strip().split(","):
            a, _, b = part.partition("-")
            cpus += range(int(a), int(b or a) + 1)
        out[int(tid)] = cpus
    return out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiny(ort_cache, precision, batch):
    folder, first = ort_cache
    assert first[precision]["cache"] == "miss"
    engine = load_engine(ort_spec(precision=precision, batch=batch, cache_dir=folder))
    inputs = engine.make_input()
    assert inputs.shape == (batch, 32, 32, 3) and inputs.dtype.name == "float32"
    assert engine.infer(inputs) is None
    outputs = engine._session.run(None, {engine._name: inputs})[0]
    assert outputs.shape == (batch, 10) and np.isfinite(outputs).all()
    info = engine.info
    assert (info["engine"], info["precision"], info["cache"]) == ("onnxruntime", precision, "hit")
    assert info["provider"] == "CPUExecutionProvider"
    assert info["converted_with"]["tf2onnx"] and info["converted_with"]["tf"]
    quantized = info["quantized_ops"]
    if precision == "int8":
        assert quantized["QuantizeLinear"] >= 1 and quantized["DequantizeLinear"] >= 4
        assert info["converted_with"]["onnxruntime"]
    else:
        assert quantized == {}
    meta = json.loads(Path(info["cache_path"]).with_suffix(".json").read_text())
    assert meta["precision"] == precision and meta["input_shape"] == [32, 32, 3]
    engine.close()


def test_onnx_agrees_with_keras(ort_cache):
    """The exported graph computes what the Keras model computes, on one input."""
    import onnxruntime as ort

    from scaler.engines.models import build_builtin, import_tf

    folder, first = ort_cache
    import_tf(EngineSpec(threads=1, inter_op_threads=1))
    keras_model = build_builtin("tiny", seed=0)  # the engine's seed for spec.seed 0
    x = np.random.default_rng(1).random((1, 32, 32, 3), dtype=np.float32)
    session = ort.InferenceSession(first["fp32"]["cache_path"],
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = np.asarray(keras_model(x, training=False))
    assert np.abs(want).max() > 1e-3  # a non-trivial output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


LOAD_CACHED = """
import json, sys
from scaler.engines import EngineSpec, load_engine
out = {"before": "onnx" in sys.modules}
for p in ("fp32", "int8"):
    e = load_engine(EngineSpec(engine="onnxruntime", model="tiny", threads=1, precision=p,
                               batch=3, cache_dir=sys.argv[1]))
    e.infer(e.make_input())
    out[p] = {k: e.info[k] for k in ("cache", "input_shape", "quantized_ops", "cache_path")}
out["onnx"] = "onnx" in sys.modules
print(json.dumps(out))
"""


def load_cached_in_a_fresh_python(folder: str) -> dict:
    done = subprocess.run([sys.executable, "-c", LOAD_CACHED, folder], capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_cache_hit_loads_without_importing_onnx(ort_cache, tmp_path):
    """A worker on a cache entry reads the quantization nodes from the entry's record and
    its input from the session: no ``import onnx`` (0.8 s of CPU per worker start). What it
    reports is what the graph itself holds, read here with onnx. An entry cached before
    that record (none in its sidecar) is still read, with onnx."""
    import shutil

    import onnx

    from scaler.engines import onnx_build

    folder, _ = ort_cache
    old = tmp_path / "cache"
    shutil.copytree(folder, old)
    for meta in old.glob("*.json"):  # as cached by an earlier scaler
        doc = json.loads(meta.read_text())
        doc.pop("quantized_ops", None)
        meta.write_text(json.dumps(doc))
    for where, imports_onnx in ((folder, False), (str(old), True)):
        got = load_cached_in_a_fresh_python(where)
        assert got["before"] is False and got["onnx"] is imports_onnx, (where, got)
        for precision in ("fp32", "int8"):
            info = got[precision]
            assert info["cache"] == "hit"
            proto = onnx.load(info["cache_path"])
            assert info["quantized_ops"] == onnx_build.quantized_ops(proto)
            assert tuple(info["input_shape"]) == onnx_build.input_of(proto, 3)[1] == (
                3, 32, 32, 3)
        assert got["int8"]["quantized_ops"] and not got["fp32"]["quantized_ops"]


def test_cache_damage_is_rebuilt(ort_cache, tmp_path):
    folder, first = ort_cache
    import shutil

    mine = tmp_path / "cache"
    shutil.copytree(folder, mine)
    # the int8 entry: its rebuild quantizes the intact fp32 entry, no TensorFlow export
    entry = Path(first["int8"]["cache_path"].replace(folder, str(mine)))
    entry.write_bytes(entry.read_bytes()[:100])  # cut short, as by a crash
    engine = load_engine(ort_spec(precision="int8", cache_dir=str(mine)))
    assert engine.info["cache"] == "rebuilt" and engine.info["quantized_ops"]
    assert "tf" in engine.info["converted_with"]  # the versions that made the fp32 graph


def test_affinity_string_is_one_based():
    assert ot.affinity_string([1, 2, 5]) == "2;3;6"
    assert ot.parse_affinity_string("2;3-4,7") == [[1], [2, 3, 6]]


@pytest.mark.skipif(len(CPUS) < 2, reason="needs 2 CPUs")
@pytest.mark.parametrize("style", ["tuned", "defaults"])
def test_unbound_styles(ort_cache, style):
    """tuned: spinning off; defaults: nothing but the counts; neither binds a thread (read
    back from /proc here): every pool thread may run on every allowed CPU."""
    folder, _ = ort_cache
    before = set(tasks())
    engine = load_engine(ort_spec(threads=2, threading=style, cache_dir=folder))
    engine.infer(engine.make_input())
    new = {tid: cpus for tid, cpus in tasks().items() if tid not in before}
    session = engine.info["threading"]["session"]
    assert session["intra_op_num_threads"] == 2
    spinning = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
    assert session["config"] == (spinning if style == "tuned" else {})
    assert len(new) == 1 and list(new.values()) == [CPUS]  # one pool thread, unbound
    assert engine.info["threading"]["calling_thread_cpus"] == CPUS
    engine.close()


MODEL_ZOO = textwrap.dedent("""
    import json, os, sys
    os.sched_setaffinity(0, {allowed})
    from scaler.engines import EngineSpec, load_engine
    from tests.scaler.engines.test_engine_onnxruntime import tasks
    import onnx, onnxruntime  # each starts a thread of its own on import
    before = set(tasks())
    engine = load_engine(EngineSpec(engine="onnxruntime", model="tiny", threads={threads},
                                    threading="model-zoo", cache_dir={folder!r}))
    engine.infer(engine.make_input())
    import threading
    me = threading.get_native_id()
    new = {{t: c for t, c in tasks().items() if t not in before}}
    print(json.dumps({{"info": engine.info["threading"], "me": tasks()[me],
                      "pool": sorted(new.values())}}))
""")


def run_model_zoo(allowed: list[int], folder: str) -> dict:
    code = MODEL_ZOO.format(allowed=set(allowed), threads=len(allowed), folder=folder)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("subset", [False, True])
def test_model_zoo_binds_thread_k_to_core_k(ort_cache, subset):
    """Intra-op threads = the allowed physical cores; the calling thread on the first core,
    pool thread k on the k-th (compact), read back from /proc by the child itself."""
    folder, _ = ort_cache
    allowed = CPUS[-1:] if subset else CPUS
    cores = [c for c in sorted(read_topology().cores, key=lambda c: c.key)
             if set(c.cpus) & set(allowed)]
    expected = [min(set(c.cpus) & set(allowed)) for c in cores]
    out = run_model_zoo(allowed, folder)
    info = out["info"]
    assert info["session"]["intra_op_num_threads"] == len(cores)
    assert info["session"]["inter_op_num_threads"] == len({c.package for c in cores})
    assert out["me"] == [expected[0]]
    assert out["pool"] == [[cpu] for cpu in sorted(expected[1:])]
    if len(expected) > 1:
        assert ot.parse_affinity_string(
            info["session"]["config"]["session.intra_op_thread_affinities"]) == [
            [cpu] for cpu in expected[1:]]
    assert "session.intra_op.allow_spinning" not in info["session"]["config"]  # ORT's default


def test_user_onnx_runs_here_by_default_and_on_openvino_when_asked(ort_cache, tmp_path):
    folder, first = ort_cache
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(Path(first["fp32"]["cache_path"]).read_bytes())
    resolved = check_spec(EngineSpec(model=str(mine)), ISA)
    assert resolved.engine == "onnxruntime"
    engine = load_engine(resolved)
    engine.infer(engine.make_input())
    assert (engine.info["model"], engine.info["cache"]) == ("mine.onnx", "user")
    assert check_spec(EngineSpec(model=str(mine), engine="openvino"), ISA).engine == "openvino"
    with pytest.raises(EngineError, match="a onnx model runs on the openvino or onnxruntime "
                                          "engine, not on tf"):
        check_spec(EngineSpec(model=str(mine), engine="tf"), ISA)
    quantized = tmp_path / "q.onnx"
    quantized.write_bytes(Path(first["int8"]["cache_path"]).read_bytes())
    with pytest.raises(EngineError, match="is quantized .*: use int8"):
        load_engine(EngineSpec(model=str(quantized)))
    engine = load_engine(EngineSpec(model=str(quantized), precision="int8"))
    assert engine.info["cache"] == "user"


def test_native_suffixes_may_not_overlap():
    with pytest.raises(ValueError, match=".onnx files already run on 'onnxruntime'"):
        register(EngineType(name="other-onnx", summary="x", precisions=("fp32",),
                            load=lambda spec: None, native_suffixes=(".onnx",)))


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_scaling_cli_shared_and_pinned(ort_cache, tmp_path):
    """Four groups of real ORT workers; their windows as short as the run's rules allow
    (each group's time is its workers' start: the figures are not looked at)."""
    folder, _ = ort_cache
    r = scaler_cmd("scaling", "--engine", "onnxruntime", "--model", "tiny",
                   "--placement", "shared,pinned", "--instances", "1,2", "--min-duration",
                   "0.05", "--min-queries", "5", "--warmup", "0",
                   "--cache-dir", folder, "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    groups = doc["groups"]
    assert sorted((g["placement"], len(g["per_instance"])) for g in groups) == [
        ("pinned", 1), ("pinned", 2), ("shared", 1), ("shared", 2)]
    for group in groups:
        assert group["status"] == "complete" and group["throughput_ips"] > 0
        for inst in group["per_instance"]:
            info = inst["engine"]
            assert info["engine"] == "onnxruntime" and info["cache"] == "hit"
            session = info["threading"]["session"]
            assert session["intra_op_num_threads"] == inst["threads"]
            if inst["threads"] > 1:  # every pool thread may use every CPU of the instance
                assert all(t["cpus"] == inst["binding"]["cpus"]
                           for t in info["threading"]["pool_threads"])


def test_bad_input_is_one_line_exit_2(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    for args, needle in (
        (["--precision", "bf16", "--model", "tiny"], "engine onnxruntime does not support bf16"),
        (["--model", str(junk)], "junk.onnx"),
    ):
        r = scaler_cmd("latency", "--engine", "onnxruntime", *args, *SHORT,
                       "--out", str(tmp_path / "out"))
        assert r.returncode == 2, (r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], r.stderr


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_style_runs_feed_the_simulators_style_terms(ort_cache, tmp_path, capsys):
    """Issue 26: a real run of two styles records what the simulator's style terms read:
    model-zoo instances bound thread by thread to the same CPUs (q = 2 threads per CPU at
    N=2) and each style's idle spin share; ``simulate --threading model-zoo`` calibrates on
    it. The figures are this (busy) machine's: only their presence and origin are checked.
    Two groups (N=2 of each style), the serial fraction given: one core count per instance
    cannot measure it."""
    from scaler.cli import main
    from scaler.results import load_run
    from scaler.simulate.machine import topology_from_dict
    from scaler.simulate.terms import measured_layout, readback_shares, threads_per_cpu

    folder, _ = ort_cache
    r = scaler_cmd("scaling", "--engine", "onnxruntime", "--model", "tiny", "--threading",
                   "tuned,model-zoo", "--placement", "shared", "--instances", "2", *SHORT,
                   "--cache-dir", folder, "--out", str(tmp_path / "runs"), "--json")
    assert r.returncode == 0, r.stderr
    run = load_run(Path(json.loads(r.stdout)["run"]))
    topo = topology_from_dict(run.doc["host"]["topology"])
    (zoo,) = [g for g in run.doc["groups"] if g["threading"] == "model-zoo"]
    layout, bound = measured_layout(topo, zoo)
    assert bound == (True, True) and list(threads_per_cpu(layout)) == [2.0, 2.0]
    _, counts = readback_shares([run])
    assert counts == {"tuned": 2, "model-zoo": 2}
    code = main(["simulate", str(run.path), "--machine", "2s28c2t", "--placement",
                 "shared,vm", "--cores-per-instance", "6", "--smt", "--threading",
                 "model-zoo", "--instances", "1,8", "--queries", "2000", "--assume",
                 "serial_fraction=0.3", "--out", str(tmp_path / "sims")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "read back stacked in 1 model-zoo group(s)" in out, out
    assert "style terms for --threading model-zoo" in err
