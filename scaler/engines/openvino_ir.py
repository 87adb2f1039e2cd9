"""The OpenVINO IR the ``openvino`` engine compiles: the user's (``.xml``, or ``.onnx`` with
``--engine openvino``, run as they are) or converted and cached.

On a cache miss the conversion runs in a child (``scaler.engines.convert``): Keras
``model.export`` then ``openvino.convert_model`` imports TensorFlow, and NNCF's int8
calibration peaks well above what a worker holds; none of that stays in the measured worker,
which then imports no TensorFlow. The IR keeps fp32 weights (``compress_to_fp16=False``);
bf16 runs the fp32 IR; int8 is the fp32 IR quantized by ``nncf.quantize`` with generated
calibration inputs, cached as its own entry. An entry is keyed by the model (name and shape,
or content hash), the precision it stores, the versions that made it and ``RECIPE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
import sys
import time
from pathlib import Path
from typing import Any

from scaler.engines import cache
from scaler.engines.base import EngineError, EngineSpec, installed_version
from scaler.engines.convert import convert_in_child
from scaler.engines.models import BUILTIN_SHAPES, model_kind

RECIPE = 1  # bump when the conversion below changes: old cache entries are then ignored
CALIBRATION_SAMPLES = 32  # generated calibration inputs for NNCF (random weights anyway)
CONVERT_TIMEOUT_S = 900  # ResNet50 conversion takes about 10 s, quantization a few more
IR_XML = "model.xml"  # inside a cache entry's folder, beside model.bin
TF_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tf-nightly-cpu", "tf-nightly")


def without_telemetry() -> None:
    """Keep OpenVINO's usage telemetry out of this process (call before importing openvino).

    ``import openvino`` imports its model converter, which, when the optional
    ``openvino-telemetry`` package is installed (nncf installs it), reports the import by
    forking a child that posts to the network. On a machine without internet that child
    hangs, and when it was forked from a worker it outlived the worker and the command. Made
    unimportable here, the converter uses its built-in no-op stub (nncf does the same).
    """
    sys.modules.setdefault("openvino_telemetry", None)


def model_for(core: Any, spec: EngineSpec) -> tuple[Any, Path, dict[str, Any]]:
    """The ov.Model to compile, the file it came from, and how it was obtained."""
    if model_kind(spec.model) in ("xml", "onnx"):
        path = Path(spec.model)
        model = read_model(core, path)
        quantized = is_quantized(model)
        if quantized and spec.precision != "int8":
            raise EngineError(f"model {path.name!r} is quantized (FakeQuantize): use int8")
        if quantized or spec.precision != "int8":  # runs as it is
            return model, path, {"cache": "user"}
    folder, cached = converted(spec)
    return read_model(core, folder / IR_XML), folder, cached


def read_model(core: Any, path: Path) -> Any:
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EngineError(f"cannot read OpenVINO model {str(path)!r}: {reason}") from exc


def is_quantized(model: Any) -> bool:
    """Whether the model already holds int8 quantization (NNCF or POT FakeQuantize ops)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def model_name(model: str) -> str:
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
    name = re.sub(r"[^A-Za-z0-9._-]", "_", model_name(spec.model))
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


def converted(spec: EngineSpec) -> tuple[Path, dict[str, Any]]:
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
    return convert_in_child("openvino_ir", spec, out, what, CONVERT_TIMEOUT_S)


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
        "model": model_name(spec.model),
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
        return read_model(ov.Core(), Path(spec.model))
    fp32 = dataclasses.replace(spec, precision="fp32")
    path = entry_path(fp32)
    cache.get_or_build(path, lambda tmp: convert(fp32, tmp), folder=True)
    return read_model(ov.Core(), path / IR_XML)


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
