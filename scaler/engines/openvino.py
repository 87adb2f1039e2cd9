"""The ``openvino`` engine: the OpenVINO CPU plugin, fp32, bf16 or int8 (NNCF), one stream.

A worker compiles an OpenVINO IR (``model.xml`` + ``model.bin``) for the CPU with one
stream, inference threads = its partition's CPUs, OpenVINO's CPU pinning per ``--threading``
(off under ``tuned``: the binding is scaler's) and no hint (``benchmark_app -hint none``).
What OpenVINO made of that is read back from the compiled model into ``info``: its
properties (streams, threads, pinning, hint, precision hint, requests) and the precision
each kind of layer of the runtime model executes in.

The IR comes from the user (``--model my.xml``, or ``.onnx`` with ``--engine openvino``; both
run as they are) or from the converted-model cache. On a miss the conversion runs in a child:
Keras ``model.export`` then ``openvino.convert_model`` imports TensorFlow, and NNCF's int8
calibration peaks well above what a worker holds; none of that stays in the measured worker,
which then imports no TensorFlow. Precisions:

- fp32: the IR keeps fp32 weights (``compress_to_fp16=False``) and the CPU is told to infer
  in f32 (``INFERENCE_PRECISION_HINT``: on AMX CPUs OpenVINO's default would be bf16).
- bf16: the fp32 IR with the bf16 inference precision hint, where the CPU has avx512_bf16 or
  AMX; refused elsewhere (OpenVINO would silently run f32).
- int8: the fp32 IR quantized by ``nncf.quantize`` with generated calibration inputs,
  cached as its own entry; the layers NNCF leaves in float run f32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scaler.engines import cache
from scaler.engines.base import EngineError, EngineSpec, installed_version
from scaler.engines.convert import convert_in_child
from scaler.engines.kernels import openvino_kernels
from scaler.engines.models import BUILTIN_SHAPES, model_kind
from scaler.engines.registry import EngineType, register, require_bf16_isa

RECIPE = 1  # bump when the conversion below changes: old cache entries are then ignored
CALIBRATION_SAMPLES = 32  # generated calibration inputs for NNCF (random weights anyway)
CONVERT_TIMEOUT_S = 900  # ResNet50 conversion takes about 10 s, quantization a few more
IR_XML = "model.xml"  # inside a cache entry's folder, beside model.bin
DEVICE = "CPU"
TF_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tf-nightly-cpu", "tf-nightly")
INFER_REQUESTS = 1  # the worker's timed loop runs one synchronous request at a time
INFERENCE_TYPE = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # precision hint per precision
# ENABLE_CPU_PINNING per --threading style (None: OpenVINO's platform default); info reads back
PINNING = {"tuned": False, "defaults": None, "model-zoo": True}
# runtime precisions of the compute layers -> scaler's precision names
EXECUTED = {"u8": "int8", "i8": "int8", "bf16": "bf16", "f32": "fp32", "f16": "fp16"}
COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution", "Deconvolution")
# properties of the compiled model recorded in info (read back, not what was asked)
READ_BACK = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "ENABLE_CPU_PINNING", "PERFORMANCE_HINT",
             "PERFORMANCE_HINT_NUM_REQUESTS", "INFERENCE_PRECISION_HINT", "EXECUTION_MODE_HINT",
             "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "ENABLE_HYPER_THREADING",
             "ENABLE_CPU_RESERVATION", "SCHEDULING_CORE_TYPE", "TBB_PARTITIONER",
             "EXECUTION_DEVICES")


def without_telemetry() -> None:
    """Keep OpenVINO's usage telemetry out of this process (call before importing openvino).

    ``import openvino`` imports its model converter, which, when the optional
    ``openvino-telemetry`` package is installed (nncf installs it), reports the import by
    forking a child that posts to the network. On a machine without internet that child
    hangs, and when it was forked from a worker it outlived the worker and the command. Made
    unimportable here, the converter uses its built-in no-op stub (nncf does the same).
    """
    sys.modules.setdefault("openvino_telemetry", None)


def compile_config(spec: EngineSpec) -> dict[str, Any]:
    """What scaler asks OpenVINO's CPU plugin for (``benchmark_app -hint none -nstreams 1
    -nthreads N -pin NO [-infer_precision bf16]``), no performance hint, pinning per style."""
    pin = {} if PINNING[spec.threading] is None else {"ENABLE_CPU_PINNING": PINNING[spec.threading]}
    return {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": spec.threads, **pin,
            "INFERENCE_PRECISION_HINT": INFERENCE_TYPE[spec.precision]}


class OpenVinoEngine:
    """An OpenVINO IR (the user's, or converted and cached) compiled for the batch."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        without_telemetry()
        import openvino as ov

        self.spec = spec
        core = ov.Core()
        model, path, cached = _model(core, spec)
        self._compiled, shape = _compile(core, model, path.name, spec)
        self._request = self._compiled.create_infer_request()
        self._bound: Any = None
        layers = layer_precisions(self._compiled)
        executed = executed_precisions(layers)
        if spec.precision not in executed:
            raise EngineError(f"OpenVINO ran the compute layers of {path.name!r} in "
                              f"{', '.join(executed) or 'no known precision'}, not "
                              f"{spec.precision}" + (": use int8" if "int8" in executed else ""))
        self.info: dict[str, Any] = {
            "engine": "openvino",
            "precision": spec.precision,
            "model": path.name if cached["cache"] == "user" else _model_name(spec.model),
            "input_shape": shape,
            "openvino_version": ov.get_version(),
            "device": DEVICE,
            "threads": spec.threads,
            "infer_requests": INFER_REQUESTS,
            "requested": compile_config(spec),
            "compiled": read_back(self._compiled),
            "executed_precisions": executed,  # of the compute layers (convolutions, matmuls)
            "layer_precisions": layers,  # layer type -> runtime precision -> count
            # the instruction-set unit each compute kernel ran on (its name says)
            "kernel_isa": openvino_kernels(self._compiled, COMPUTE_LAYERS),
            **cached,
            "load_s": round(time.perf_counter() - started, 3),
        }

    def make_input(self) -> Any:
        """A uniform [0, 1) float32 batch from the spec's seed."""
        import numpy as np

        rng = np.random.default_rng(self.spec.seed)
        return rng.random(tuple(self.info["input_shape"]), dtype=np.float32)

    def infer(self, inputs: Any) -> None:
        """One synchronous request, as ``benchmark_app -api sync`` runs it: the inputs are
        bound to the request once (shared with the numpy array, no copy per query)."""
        if inputs is not self._bound:
            import openvino as ov

            self._request.set_input_tensor(ov.Tensor(inputs, shared_memory=True))
            self._bound = inputs
        self._request.infer()

    def close(self) -> None:
        self._request = None
        self._compiled = None
        self._bound = None


def _compile(core: Any, model: Any, name: str, spec: EngineSpec) -> tuple[Any, list[int]]:
    """``model`` reshaped to the batch and compiled for the CPU; and its input shape."""
    import openvino as ov

    if len(model.inputs) != 1:
        raise EngineError(f"model {name!r} has {len(model.inputs)} inputs; scaler needs 1")
    port = model.inputs[0]
    if port.get_element_type() != ov.Type.f32:
        raise EngineError(f"model {name!r} takes {port.get_element_type().get_type_name()} "
                          "input; scaler feeds f32 only")
    shape = _batched_shape(name, port.get_partial_shape(), spec.batch)
    try:
        model.reshape({port: ov.PartialShape(shape)})
        compiled = core.compile_model(model, DEVICE, compile_config(spec))
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EngineError(f"OpenVINO cannot run {name!r} at batch {spec.batch}: "
                          f"{reason}") from exc
    return compiled, shape


def read_back(compiled: Any) -> dict[str, Any]:
    """The compiled model's own view of ``READ_BACK`` properties, as JSON-able values."""
    out: dict[str, Any] = {}
    for name in READ_BACK:
        try:
            value = compiled.get_property(name)
        except RuntimeError:  # not reported by this OpenVINO version
            continue
        out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if hasattr(value, "get_type_name"):  # an element type: f32, bf16
        return value.get_type_name()
    return getattr(value, "name", None) or str(value)  # an enum: PERFORMANCE, ANY_CORE


def layer_precisions(compiled: Any) -> dict[str, dict[str, int]]:
    """Layer type -> runtime precision -> count, from the compiled (runtime) model."""
    counts: dict[str, Counter[str]] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        kind = info["layerType"].astype(str)
        if kind in ("Input", "Output", "Parameter", "Result"):
            continue
        counts.setdefault(kind, Counter())[info["runtimePrecision"].astype(str)] += 1
    return {kind: dict(sorted(c.items())) for kind, c in sorted(counts.items())}


def executed_precisions(layers: dict[str, dict[str, int]]) -> dict[str, int]:
    """How many compute layers ran in each precision (``int8``, ``bf16``, ``fp32``)."""
    out: Counter[str] = Counter()
    for kind in COMPUTE_LAYERS:
        for runtime, count in layers.get(kind, {}).items():
            out[EXECUTED.get(runtime.lower(), runtime)] += count
    return dict(out.most_common())


def _batched_shape(name: str, shape: Any, batch: int) -> list[int]:
    """The input shape with ``batch`` first; EngineError if other dimensions are unknown or
    the model fixes another batch."""
    dims = list(shape)
    if not dims or any(d.is_dynamic for d in dims[1:]):
        raise EngineError(f"model {name!r} input shape {shape} has unknown dimensions")
    first = dims[0]
    if first.is_static and first.get_length() not in (1, batch):
        raise EngineError(f"model {name!r} has a fixed batch of {first.get_length()}, "
                          f"not {batch}")
    return [batch, *(d.get_length() for d in dims[1:])]


def _model(core: Any, spec: EngineSpec) -> tuple[Any, Path, dict[str, Any]]:
    """The ov.Model to compile, the file it came from, and how it was obtained."""
    if model_kind(spec.model) in ("xml", "onnx"):
        path = Path(spec.model)
        model = _read(core, path)
        quantized = is_quantized(model)
        if quantized and spec.precision != "int8":
            raise EngineError(f"model {path.name!r} is quantized (FakeQuantize): use int8")
        if quantized or spec.precision != "int8":  # runs as it is
            return model, path, {"cache": "user"}
    folder, cached = _converted(spec)
    return _read(core, folder / IR_XML), folder, cached


def _read(core: Any, path: Path) -> Any:
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EngineError(f"cannot read OpenVINO model {str(path)!r}: {reason}") from exc


def is_quantized(model: Any) -> bool:
    """Whether the model already holds int8 quantization (NNCF or POT FakeQuantize ops)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def _model_name(model: str) -> str:
    return model if model in BUILTIN_SHAPES else Path(model).name


def versions() -> dict[str, str]:
    """The versions a converted IR depends on, from package metadata (no heavy import)."""
    out = {"openvino": _version("openvino")}
    for name, distributions in (("nncf", ("nncf",)), ("tf", TF_DISTRIBUTIONS)):
        found = installed_version(distributions)
        if found:
            out[name] = found
    return out


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise EngineError(f"the openvino engine needs {distribution}, which is not "
                          "installed") from None


def entry_path(spec: EngineSpec) -> Path:
    """The cache folder of ``spec``'s IR: keyed by model (name and shape, or content hash),
    precision (bf16 runs the fp32 IR), the versions that made it and the recipe."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", _model_name(spec.model))
    if spec.model in BUILTIN_SHAPES:
        key = f"{name}-{'x'.join(map(str, BUILTIN_SHAPES[spec.model]))}"
    else:  # the content hash covers the shape and weights of a user model
        key = f"{name}-{_content_hash(spec.model)[:16]}"
    stored = "int8" if spec.precision == "int8" else "fp32"
    made_by = [f"ov{_version('openvino')}"]
    if stored == "int8":
        made_by.append(f"nncf{_version('nncf')}")
    if model_kind(spec.model) not in ("xml", "onnx"):  # converted from TensorFlow
        tf_version = installed_version(TF_DISTRIBUTIONS)
        if tf_version is None:
            raise EngineError("converting a Keras or SavedModel model to OpenVINO IR needs "
                              "TensorFlow, which is not installed")
        made_by.append(f"tf{tf_version}")
    return cache.cache_root(spec.cache_dir) / f"{key}-{stored}-{'-'.join(made_by)}-r{RECIPE}.ir"


def _content_hash(model: str) -> str:
    """A user model's hash; an IR's ``.bin`` (its weights) counts too."""
    path = Path(model)
    parts = [cache.sha256_tree(path)]
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        parts.append(cache.sha256_file(path.with_suffix(".bin")))
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()


def _converted(spec: EngineSpec) -> tuple[Path, dict[str, Any]]:
    """The cached IR of ``spec``'s model, converting (in a child) on a miss."""
    path = entry_path(spec)
    started = time.perf_counter()
    try:
        meta, outcome = cache.get_or_build(path, lambda tmp: _convert_in_child(spec, tmp),
                                           folder=True)
    except OSError as exc:
        raise EngineError(f"cannot use the model cache {str(path.parent)!r}: {exc}") from exc
    return path, {
        "cache": outcome,
        "cache_path": str(path),
        "conversion_s": None if outcome == "hit" else round(time.perf_counter() - started, 3),
        "converted_with": meta.get("versions", {}),
        "ir_precision": meta.get("precision"),
    }


def _convert_in_child(spec: EngineSpec, out: Path) -> dict[str, Any]:
    what = "int8 OpenVINO IR (NNCF)" if spec.precision == "int8" else "OpenVINO IR"
    return convert_in_child("openvino", spec, out, what, CONVERT_TIMEOUT_S)


def convert(spec: EngineSpec, out: Path) -> dict[str, Any]:
    """Write ``spec``'s model as an IR into the folder ``out`` (in the conversion child).

    int8 quantizes the fp32 IR, itself taken from (or first put in) the cache, so a cached
    fp32 IR is quantized without TensorFlow.
    """
    without_telemetry()
    import openvino as ov

    started = time.perf_counter()
    if spec.precision == "int8":
        model = _fp32_model(spec)
        model = quantize(model, spec.seed)
    else:
        model = _to_openvino(spec)
    ov.save_model(model, str(out / IR_XML), compress_to_fp16=False)
    shape = model.inputs[0].get_partial_shape()
    return {
        "model": _model_name(spec.model),
        "input_shape": str(shape),
        "precision": "int8" if spec.precision == "int8" else "fp32",
        "versions": versions(),
        "recipe": RECIPE,
        "seed": spec.seed,
        "calibration_samples": CALIBRATION_SAMPLES if spec.precision == "int8" else None,
        "conversion_s": round(time.perf_counter() - started, 3),
    }


def _fp32_model(spec: EngineSpec) -> Any:
    """The fp32 model int8 starts from: a user IR/ONNX as is, else the cached fp32 IR."""
    import openvino as ov

    if model_kind(spec.model) in ("xml", "onnx"):
        return _read(ov.Core(), Path(spec.model))
    fp32 = dataclasses.replace(spec, precision="fp32")
    path = entry_path(fp32)
    cache.get_or_build(path, lambda tmp: convert(fp32, tmp), folder=True)
    return _read(ov.Core(), path / IR_XML)


def _to_openvino(spec: EngineSpec) -> Any:
    """A built-in, .keras or SavedModel model as an ov.Model (imports TensorFlow)."""
    import tempfile

    import openvino as ov

    from scaler.engines.models import import_tf, load_model

    import_tf(spec)
    model = load_model(spec)
    if model.saved_model_dir is not None:
        return ov.convert_model(model.saved_model_dir)
    with tempfile.TemporaryDirectory(prefix="scaler-export-") as tmp:
        model.keras_model.export(tmp, verbose=False)  # Keras 3: a SavedModel OpenVINO reads
        return ov.convert_model(tmp)


def quantize(model: Any, seed: int) -> Any:
    """NNCF post-training int8 quantization with ``CALIBRATION_SAMPLES`` uniform [0, 1)
    inputs of batch 1 generated from ``seed``."""
    import nncf
    import numpy as np

    port = model.inputs[0]
    dims = list(port.get_partial_shape())
    shape = (1, *(d.get_length() for d in dims[1:]))
    rng = np.random.default_rng(seed)
    samples = [rng.random(shape, dtype=np.float32) for _ in range(CALIBRATION_SAMPLES)]
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=CALIBRATION_SAMPLES)


def _check(spec: EngineSpec, isa: tuple[str, ...]) -> None:
    require_bf16_isa(spec, isa)


ENGINE = register(EngineType(
    name="openvino", summary="OpenVINO CPU plugin, 1 stream (fp32, bf16, int8 via NNCF)",
    precisions=("fp32", "bf16", "int8"), load=OpenVinoEngine,
    native_suffixes=(".xml",),  # .onnx: onnxruntime's by default, here with --engine openvino
    accepts=("builtin", "keras", "savedmodel", "xml", "onnx"),
    # measured here for ResNet50 224x224 fp32 (int8 is smaller): 0.34 GB RSS at batch 1,
    # 0.57 GB at batch 32
    memory_gb=(0.35, 0.0076), packages=("openvino", "nncf"), check=_check,
    threading=("tuned", "defaults", "model-zoo"),
    isa_caps=True))  # its CPU plugin's kernels are oneDNN's: ONEDNN_MAX_CPU_ISA caps them
