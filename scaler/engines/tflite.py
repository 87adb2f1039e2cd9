"""The ``tflite`` engine: the LiteRT interpreter with XNNPACK, fp32 or full-integer int8.

A worker loads a converted model from the cache and never imports TensorFlow. On a cache
miss the conversion runs in a child process (``scaler.engines.convert``):
converting imports TensorFlow (about 0.6 GB) and int8 calibration peaks near 2.3 GB on
ResNet50, and none of that should stay in the worker whose speed and memory are measured.
The child inherits the worker's CPU affinity and thread environment.

Conversion goes through ``TFLiteConverter.from_keras_model`` (or ``from_saved_model``):
``from_concrete_functions`` does not freeze Keras 3 variables and yields an empty model.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from pathlib import Path
from typing import Any

from scaler.engines import cache
from scaler.engines.base import THREADING_STYLES, EngineError, EngineSpec
from scaler.engines.convert import convert_in_child
from scaler.engines.models import BUILTIN_SHAPES, model_kind
from scaler.engines.registry import EngineType, register

RECIPE = 1  # bump when the conversion below changes: old cache entries are then ignored
CALIBRATION_SAMPLES = 32  # representative inputs for int8 ranges (random weights anyway)
CONVERT_TIMEOUT_S = 900  # ResNet50 int8 takes about 15 s on an idle core here


class TfliteEngine:
    """A ``.tflite`` model (the user's, or converted and cached) resized to the batch."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        if model_kind(spec.model) == "tflite":
            path, cached = Path(spec.model), {"cache": "user"}
        else:
            path, cached = _converted(spec)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=spec.threads)
        except ValueError as exc:
            raise EngineError(f"cannot load tflite model {str(path)!r}: {exc}") from exc
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise EngineError(
                f"tflite model {path.name!r} has {len(inputs)} inputs; scaler needs 1"
            )
        self._input = inputs[0]
        shape = (spec.batch, *(int(d) for d in self._input["shape"][1:]))
        try:
            self._interpreter.resize_tensor_input(self._input["index"], shape, strict=False)
            self._interpreter.allocate_tensors()  # applies the default XNNPACK delegate
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"tflite model {path.name!r} cannot run batch {spec.batch}") from exc
        dtype = self._input["dtype"].__name__
        if cached["cache"] == "user" and spec.precision == "fp32" and dtype in ("int8", "uint8"):
            raise EngineError(f"tflite model {path.name!r} takes {dtype} input: use int8")
        ops = [op["op_name"] for op in self._interpreter._get_ops_details()]
        self.info: dict[str, Any] = {
            "engine": "tflite",
            "precision": spec.precision,
            "model": path.name if cached["cache"] == "user" else _model_name(spec.model),
            "input_shape": list(shape),
            "input_dtype": dtype,
            "xnnpack": "DELEGATE" in ops,  # XNNPACK is LiteRT's only default delegate
            "litert_version": importlib.metadata.version("ai-edge-litert"),
            "threads": spec.threads,
            **cached,
            "load_s": round(time.perf_counter() - started, 3),
        }

    def make_input(self) -> Any:
        """A uniform [0, 1) batch from the spec's seed, quantized if the model takes int8."""
        import numpy as np

        rng = np.random.default_rng(self.spec.seed)
        values = rng.random(tuple(self.info["input_shape"]), dtype=np.float32)
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return values
        scale, zero_point = self._input["quantization"]
        limits = np.iinfo(dtype)
        quantized = np.round(values / scale + zero_point)
        return np.clip(quantized, limits.min, limits.max).astype(dtype)

    def infer(self, inputs: Any) -> None:
        """Copy the inputs in, then run. The copy is what a server pays per query; on ResNet50
        it measured 4 µs at batch 1 and 0.12 ms at batch 32 (0.02% of the query). Writing
        the input buffer once is not possible: LiteRT refuses to invoke while a numpy view
        of its buffers is alive."""
        self._interpreter.set_tensor(self._input["index"], inputs)
        self._interpreter.invoke()

    def close(self) -> None:
        self._interpreter = None


def _model_name(model: str) -> str:
    return model if model in BUILTIN_SHAPES else Path(model).name


def _converted(spec: EngineSpec) -> tuple[Path, dict[str, Any]]:
    """The cached conversion of ``spec``'s model, converting (in a child) on a miss."""
    tf_version = _tf_version()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", _model_name(spec.model))
    if spec.model in BUILTIN_SHAPES:
        key = f"{name}-{'x'.join(map(str, BUILTIN_SHAPES[spec.model]))}"
    else:  # the content hash covers the shape and weights of a user model
        key = f"{name}-{cache.sha256_tree(spec.model)[:16]}"
    path = (
        cache.cache_root(spec.cache_dir) / f"{key}-{spec.precision}-tf{tf_version}-r{RECIPE}.tflite"
    )
    started = time.perf_counter()
    try:
        meta, outcome = cache.get_or_build(path, lambda tmp: _convert_in_child(spec, tmp))
    except OSError as exc:
        raise EngineError(f"cannot use the model cache {str(path.parent)!r}: {exc}") from exc
    return path, {
        "cache": outcome,
        "cache_path": str(path),
        "conversion_s": None if outcome == "hit" else round(time.perf_counter() - started, 3),
        "converted_with_tf": meta["tf_version"],
    }


def _tf_version() -> str:
    """TensorFlow's version from package metadata: importing it would cost 2 s and 0.5 GB."""
    for distribution in ("tensorflow-cpu", "tensorflow", "tf-nightly-cpu", "tf-nightly"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise EngineError("converting a model to tflite needs TensorFlow, which is not installed")


def _convert_in_child(spec: EngineSpec, out: Path) -> dict[str, Any]:
    return convert_in_child("tflite", spec, out, f"{spec.precision} tflite", CONVERT_TIMEOUT_S)


def convert(spec: EngineSpec, out: Path) -> dict[str, Any]:
    """Convert ``spec``'s model to a ``.tflite`` file at ``out``; the sidecar's metadata."""
    import numpy as np

    from scaler.engines.models import import_tf, load_model

    started = time.perf_counter()
    tf = import_tf(spec)
    model = load_model(spec)
    if model.keras_model is not None:
        converter = tf.lite.TFLiteConverter.from_keras_model(model.keras_model)
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(model.saved_model_dir)
    if spec.precision == "int8":
        rng = np.random.default_rng(spec.seed)
        shape = (1, *model.input_shape)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.random(shape, dtype=np.float32)] for _ in range(CALIBRATION_SAMPLES)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    out.write_bytes(converter.convert())
    return {
        "model": model.name,
        "input_shape": list(model.input_shape),
        "precision": spec.precision,
        "tf_version": tf.__version__,
        "recipe": RECIPE,
        "seed": spec.seed,
        "conversion_s": round(time.perf_counter() - started, 3),
    }


ENGINE = register(EngineType(
    name="tflite", summary="LiteRT interpreter with XNNPACK (fp32, int8)",
    precisions=("fp32", "int8"), default_for=("int8",), load=TfliteEngine,
    native_suffixes=(".tflite",), accepts=("builtin", "keras", "savedmodel", "tflite"),
    # measured here for ResNet50 224x224 int8: 0.1 GB at batch 1, 2.2 GB at 1024
    memory_gb=(0.1, 0.0021), packages=("ai-edge-litert",),
    # XNNPACK's pthreadpool neither reads OpenMP variables nor binds its threads: defaults is
    # what tuned runs; under model-zoo scaler binds thread k to CPU k itself
    # (scaler/worker/threads.py)
    threading=THREADING_STYLES,
    isa_note="XNNPACK picks its kernels from the CPU's flags and has no cap"))

