"""The ``onnxruntime`` engine: ONNX Runtime's CPU execution provider, fp32 or int8 (QDQ).

A worker opens an ``InferenceSession`` on an ONNX file with the thread options of its
``--threading`` style (``scaler.engines.ort_threading``: ``tuned`` sleeps when idle,
``defaults`` is ORT out of the box, ``model-zoo`` binds thread k to the k-th allowed core)
and records what the session holds and where its threads may run, read back from the
session and from ``/proc/self/task/*/status``.

The ONNX file comes from the user (``--model my.onnx``, run as it is; ``.onnx`` picks this
engine by default, ``--engine openvino`` runs it on OpenVINO instead) or from the
converted-model cache. On a miss the conversion runs in a child (``scaler.engines.convert``):
the Keras -> ONNX export (``scaler.engines.onnx_build``, tf2onnx) imports TensorFlow and
int8 calibration runs ORT sessions of its own; none of that stays in the measured worker,
which imports no TensorFlow. Precisions:

- fp32: the exported graph as it is;
- int8: the fp32 graph through ``onnxruntime.quantization.quantize_static`` (QDQ, generated
  calibration inputs), cached as its own entry; a user's already quantized model runs as is;
- bf16: refused. ORT's CPU provider has no bf16 convolution or matmul kernel (a bf16 Conv
  fails at load: "Type 'tensor(bfloat16)' of input parameter ... of operator (Conv) ... is
  invalid"); its only bf16 switch, ``mlas.enable_gemm_fastmath_arm64_bfloat16``, is for
  ARM64.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from scaler.engines import cache, onnx_build, ort_threading
from scaler.engines.base import EngineError, EngineSpec, installed_version
from scaler.engines.convert import convert_in_child
from scaler.engines.models import BUILTIN_SHAPES, model_kind
from scaler.engines.registry import EngineType, register

RECIPE = 1  # bump when the conversion below changes: old cache entries are then ignored
CONVERT_TIMEOUT_S = 900
PROVIDER = "CPUExecutionProvider"
TF_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tf-nightly-cpu", "tf-nightly")
SETTLE_S = 2.0  # pool threads bind themselves just after the session starts them


class OnnxRuntimeEngine:
    """An ONNX model (the user's, or exported and cached) in one ORT CPU session."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        import numpy as np
        import onnxruntime as ort

        self.spec = spec
        path, cached = _model_path(spec)
        # a cache entry records its quantization nodes: the worker then needs no `import
        # onnx` (0.8 s of CPU, most of it ml_dtypes) and reads its input from the session
        quantized = cached.get("quantized_ops")
        if quantized is None:  # a user's file, or an entry cached before that record
            self._name, shape, quantized = _read_model(path, spec, cached["cache"] == "user")
        plan = ort_threading.plan_threads(spec.threading, spec.threads, spec.inter_op_threads)
        before = set(ort_threading.thread_cpus())
        try:
            self._session = ort.InferenceSession(
                str(path), ort_threading.session_options(plan), providers=[PROVIDER])
        except Exception as exc:  # ORT's Fail, InvalidGraph, NotImplemented, ...
            raise EngineError(f"ONNX Runtime cannot run {path.name!r}: {_reason(exc)}") from exc
        if "quantized_ops" in cached:
            self._name, shape = _session_input(self._session, spec.batch)
        self._allowed = os.sched_getaffinity(0)
        if plan.thread_cpus:  # compact: the calling thread is thread 0; ORT leaves it alone
            os.sched_setaffinity(0, {plan.thread_cpus[0]})
        self._feed = {self._name: np.zeros(shape, dtype=np.float32)}
        self._session.run(None, self._feed)  # a bad graph fails here, not in the timed loop
        pool = _pool_threads(before, plan)
        self.info: dict[str, Any] = {
            "engine": "onnxruntime",
            "precision": spec.precision,
            "model": path.name if cached["cache"] == "user" else _model_name(spec.model),
            "input_shape": list(shape),
            "onnxruntime_version": ort.__version__,
            "provider": self._session.get_providers()[0],
            "threads": plan.intra_op_threads,
            "quantized_ops": quantized,
            "threading": {
                "style": plan.style,
                "requested": {"intra_op_num_threads": plan.intra_op_threads,
                              "inter_op_num_threads": plan.inter_op_threads,
                              "config": dict(plan.config),
                              "thread_cpus": list(plan.thread_cpus)},
                "session": ort_threading.read_back_options(self._session),
                "calling_thread_cpus": sorted(os.sched_getaffinity(0)),
                "pool_threads": pool,
            },
            **cached,
            "load_s": round(time.perf_counter() - started, 3),
        }

    def make_input(self) -> Any:
        """A uniform [0, 1) float32 batch from the spec's seed."""
        import numpy as np

        rng = np.random.default_rng(self.spec.seed)
        return rng.random(tuple(self.info["input_shape"]), dtype=np.float32)

    def infer(self, inputs: Any) -> None:
        """One ``InferenceSession.run`` on the inputs (ORT reads the numpy buffer in place)."""
        self._session.run(None, {self._name: inputs})

    def close(self) -> None:
        """Drop the session; a calling thread bound to one core (model-zoo) gets back the
        CPUs it was allowed before."""
        self._session = None
        self._feed = None
        if os.sched_getaffinity(0) != self._allowed:
            os.sched_setaffinity(0, self._allowed)


def _pool_threads(before: set[int], plan: ort_threading.ThreadPlan) -> list[dict[str, Any]]:
    """The threads the session started and the CPUs each may run on. Under ``model-zoo``
    each binds itself a moment after it starts: wait (at most ``SETTLE_S``) until all
    ``intra - 1`` show one CPU each."""
    me = threading.get_native_id()
    deadline = time.monotonic() + SETTLE_S
    while True:
        new = {tid: cpus for tid, cpus in ort_threading.thread_cpus().items()
               if tid not in before and tid != me}
        bound = sum(len(cpus) == 1 for cpus in new.values())
        if not plan.thread_cpus or bound >= len(plan.thread_cpus) - 1:
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    return [{"tid": tid, "cpus": cpus} for tid, cpus in sorted(new.items())]


def _read_model(path: Path, spec: EngineSpec, user: bool
                ) -> tuple[str, tuple[int, ...], dict[str, int]]:
    """The input's name and batched shape and the quantization nodes, read with ``onnx``;
    a user's quantized model is refused unless int8 is asked."""
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # a damaged or foreign file: protobuf's DecodeError, ...
        raise EngineError(f"cannot read ONNX model {str(path)!r}: {_reason(exc)}") from exc
    quantized = onnx_build.quantized_ops(proto)
    if user and quantized and spec.precision != "int8":
        raise EngineError(f"model {path.name!r} is quantized ({', '.join(quantized)}): "
                          "use int8")
    name, shape = onnx_build.input_of(proto, spec.batch)
    return name, shape, quantized


def _session_input(session: Any, batch: int) -> tuple[str, tuple[int, ...]]:
    """The one float input of a session on a cache entry (made here: one float input)."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)":
        raise EngineError(f"the cached ONNX model's inputs are {[i.type for i in inputs]}; "
                          "scaler needs one float input")
    return inputs[0].name, onnx_build.batched_shape(list(inputs[0].shape), batch)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _model_name(model: str) -> str:
    return model if model in BUILTIN_SHAPES else Path(model).name


def _model_path(spec: EngineSpec) -> tuple[Path, dict[str, Any]]:
    """The ONNX file to open, and how it was obtained."""
    if model_kind(spec.model) == "onnx":
        path = Path(spec.model)
        if spec.precision != "int8" or _is_quantized(path):
            return path, {"cache": "user"}
    return _converted(spec)


def _is_quantized(path: Path) -> bool:
    import onnx

    try:
        return bool(onnx_build.quantized_ops(onnx.load(str(path), load_external_data=False)))
    except Exception as exc:  # a damaged file: the same error as loading it
        raise EngineError(f"cannot read ONNX model {str(path)!r}: {_reason(exc)}") from exc


def versions(spec: EngineSpec) -> dict[str, str]:
    """What an entry of ``spec`` is made with (package metadata: no heavy import)."""
    out = {}
    if model_kind(spec.model) != "onnx":  # exported from TensorFlow
        for name, distributions in (("tf", TF_DISTRIBUTIONS), ("tf2onnx", ("tf2onnx",)),
                                    ("onnx", ("onnx",))):
            found = installed_version(distributions)
            if found is None:
                raise EngineError(f"exporting a Keras or SavedModel model to ONNX needs "
                                  f"{distributions[0]}, which is not installed")
            out[name] = found
    if spec.precision == "int8":
        out["onnxruntime"] = installed_version(("onnxruntime",)) or "?"
    return out


def entry_path(spec: EngineSpec) -> Path:
    """The cache file of ``spec``'s ONNX model: keyed by model (name and shape, or content
    hash), precision, the versions that made it and the recipe."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", _model_name(spec.model))
    if spec.model in BUILTIN_SHAPES:
        key = f"{name}-{'x'.join(map(str, BUILTIN_SHAPES[spec.model]))}"
    else:  # the content hash covers the shape and weights of a user model
        key = f"{name}-{cache.sha256_tree(spec.model)[:16]}"
    made_by = "-".join(f"{k}{v}" for k, v in versions(spec).items())
    return cache.cache_root(spec.cache_dir) / f"{key}-{spec.precision}-{made_by}-r{RECIPE}.onnx"


def _converted(spec: EngineSpec) -> tuple[Path, dict[str, Any]]:
    """The cached ONNX file of ``spec``'s model, converting (in a child) on a miss."""
    path = entry_path(spec)
    started = time.perf_counter()
    what = "int8 ONNX (QDQ)" if spec.precision == "int8" else "ONNX"
    try:
        meta, outcome = cache.get_or_build(
            path, lambda tmp: convert_in_child("onnxruntime", spec, tmp, what,
                                               CONVERT_TIMEOUT_S))
    except OSError as exc:
        raise EngineError(f"cannot use the model cache {str(path.parent)!r}: {exc}") from exc
    found = {
        "cache": outcome,
        "cache_path": str(path),
        "conversion_s": None if outcome == "hit" else round(time.perf_counter() - started, 3),
        "converted_with": meta.get("versions", {}),
    }
    if isinstance(meta.get("quantized_ops"), dict):  # recorded by the conversion
        found["quantized_ops"] = meta["quantized_ops"]
    return path, found


def convert(spec: EngineSpec, out: Path) -> dict[str, Any]:
    """Write ``spec``'s model as ONNX to the file ``out`` (in the conversion child).

    int8 quantizes the fp32 ONNX: the user's file, else the cached fp32 entry (made here
    first on a miss), so a cached fp32 model is quantized without TensorFlow.
    """
    import onnx

    started = time.perf_counter()
    if spec.precision == "int8":
        if model_kind(spec.model) == "onnx":
            fp32 = Path(spec.model)
        else:
            fp32 = entry_path(dataclasses.replace(spec, precision="fp32"))
            fp32_spec = dataclasses.replace(spec, precision="fp32")
            cache.get_or_build(fp32, lambda tmp: convert(fp32_spec, tmp))
        made = onnx_build.quantize(fp32, out, spec.seed)
    else:
        made = onnx_build.keras_to_onnx(spec, out)
    return {
        "model": _model_name(spec.model),
        "precision": spec.precision,
        "versions": versions(spec),
        "recipe": RECIPE,
        "opset": onnx_build.OPSET,
        "seed": spec.seed,
        **made,
        # read by the worker instead of the graph (it then needs no `import onnx`)
        "quantized_ops": onnx_build.quantized_ops(onnx.load(str(out),
                                                            load_external_data=False)),
        "conversion_s": round(time.perf_counter() - started, 3),
    }


def _check(spec: EngineSpec, isa: tuple[str, ...]) -> None:
    """In the parent, before any worker starts: a user's ``.onnx`` file must be a readable
    ONNX model with one float input of a usable shape, quantized only when int8 is asked."""
    if model_kind(spec.model) != "onnx":
        return
    import onnx

    from scaler.engines.model_files import check_model_file

    check_model_file(spec.model)  # not an ONNX model at all: the one message every engine gives
    path = Path(spec.model)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a damaged or foreign file: protobuf's DecodeError, ...
        raise EngineError(f"cannot read ONNX model {str(path)!r}: {_reason(exc)}") from exc
    if not proto.graph.node:
        raise EngineError(f"cannot read ONNX model {str(path)!r}: its graph has no node")
    quantized = onnx_build.quantized_ops(proto)
    if quantized and spec.precision != "int8":
        raise EngineError(f"model {path.name!r} is quantized ({', '.join(quantized)}): "
                          "use int8")
    onnx_build.input_of(proto, spec.batch)


ENGINE = register(EngineType(
    name="onnxruntime",
    summary="ONNX Runtime CPU provider (fp32, int8 static QDQ); runs .onnx files by default",
    precisions=("fp32", "int8"), load=OnnxRuntimeEngine,
    native_suffixes=(".onnx",), accepts=("builtin", "keras", "savedmodel", "onnx"),
    # measured here for ResNet50 224x224 fp32 (VmHWM after 3 queries, 2 threads): 0.36 GB at
    # batch 1, 0.82 GB at batch 32 (int8: 0.16 and 0.60)
    memory_gb=(0.345, 0.0148), packages=("onnxruntime", "onnx", "tf2onnx"),
    check=_check, threading=ort_threading.STYLES,
    study_style="its intra-op pool binds thread k to core k itself (intra_op_thread_affinities) "
    "and keeps ORT's spin-then-sleep waits, as OpenMP under Model Zoo's KMP_AFFINITY=compact "
    "and KMP_BLOCKTIME=1 did for the study's Intel TensorFlow",
    isa_note="its MLAS kernels are picked from the CPU's flags at start, with no cap"))
