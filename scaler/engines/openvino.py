"""The ``openvino`` engine: the OpenVINO CPU plugin, fp32, bf16 or int8 (NNCF), one stream.

A worker compiles an OpenVINO IR (``model.xml`` + ``model.bin``) for the CPU with one
stream, inference threads = its partition's CPUs, OpenVINO's CPU pinning per ``--threading``
(off under ``tuned``: the binding is scaler's) and no hint (``benchmark_app -hint none``).
What OpenVINO made of that is read back from the compiled model into ``info``: its
properties (streams, threads, pinning, hint, precision hint, requests) and the precision
each kind of layer of the runtime model executes in.

The IR comes from the user (``--model my.xml``, or ``.onnx`` with ``--engine openvino``; both
run as they are) or from the converted-model cache (``openvino_ir``: on a miss the conversion
runs in a child, so the measured worker imports no TensorFlow). Precisions:

- fp32: the IR keeps fp32 weights (``compress_to_fp16=False``) and the CPU is told to infer
  in f32 (``INFERENCE_PRECISION_HINT``: on AMX CPUs OpenVINO's default would be bf16).
- bf16: the fp32 IR with the bf16 inference precision hint, where the CPU has avx512_bf16 or
  AMX; refused elsewhere (OpenVINO would silently run f32).
- int8: the fp32 IR quantized by ``nncf.quantize`` with generated calibration inputs,
  cached as its own entry; the layers NNCF leaves in float run f32.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from scaler.engines.base import EngineError, EngineSpec
from scaler.engines.kernels import openvino_kernels
from scaler.engines.openvino_ir import model_for, model_name, without_telemetry
from scaler.engines.registry import EngineType, register, require_bf16_isa

DEVICE = "CPU"
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
        model, path, cached = model_for(core, spec)
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
            "model": path.name if cached["cache"] == "user" else model_name(spec.model),
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
