"""Inference engines: ``check_spec`` validates a request, ``load_engine`` loads it.

The coordinator calls ``check_spec`` in the parent before spawning workers, and the CLI
imports this package for validation, so nothing here imports TensorFlow or numpy: the
engine modules are imported inside ``load_engine``, in the already pinned worker.
"""

from __future__ import annotations

import dataclasses
import os

from scaler.engines.base import ENGINES, PRECISIONS, Engine, EngineError, EngineSpec
from scaler.engines.models import model_kind

__all__ = ["Engine", "EngineError", "EngineSpec", "check_spec", "load_engine"]

# engine -> precisions it implements; the first engine listing a precision is its default
SUPPORTED: dict[str, tuple[str, ...]] = {
    "tf": ("fp32", "bf16"),
    "tflite": ("fp32", "int8"),
    "null": PRECISIONS,  # infers nothing, so any precision label goes through the harness
}
DEFAULT_ENGINE = {"fp32": "tf", "bf16": "tf", "int8": "tflite"}
BF16_ISA = ("avx512_bf16", "amx_bf16")  # CPU flags (as in /proc/cpuinfo) for fast bf16


def check_spec(spec: EngineSpec, isa: tuple[str, ...]) -> EngineSpec:
    """``spec`` with its engine resolved; EngineError naming what is supported if unusable.

    ``isa`` is the CPU's feature flags. ``engine="auto"`` picks the default engine for the
    precision, or ``tflite`` for a ``.tflite`` model; an explicit unsupported pair is an
    error, never a silent fallback.
    """
    spec = _validated(spec)
    if spec.engine != "null" and spec.precision == "bf16" and not set(BF16_ISA) & set(isa):
        raise EngineError(
            f"bf16 needs a CPU with {' or '.join(BF16_ISA)}; this one has neither: use fp32 or int8"
        )
    if spec.engine == "tf" and spec.precision == "bf16" and _onednn_off():
        raise EngineError("bf16 on the tf engine needs oneDNN: unset TF_ENABLE_ONEDNN_OPTS=0")
    return spec


def load_engine(spec: EngineSpec) -> Engine:
    """Load the engine in this (already pinned) process; heavy imports happen here."""
    spec = _validated(spec)
    if spec.engine == "null":
        from scaler.engines.null import NullEngine

        return NullEngine(spec)
    if spec.engine == "tf":
        from scaler.engines.tf import TfEngine

        return TfEngine(spec)
    from scaler.engines.tflite import TfliteEngine

    return TfliteEngine(spec)


def _validated(spec: EngineSpec) -> EngineSpec:
    """Every check but the CPU's: ``load_engine`` repeats them, it has no ISA list."""
    if spec.precision not in PRECISIONS:
        raise EngineError(
            f"unknown precision {spec.precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    if spec.engine != "auto" and spec.engine not in ENGINES:
        raise EngineError(f"unknown engine {spec.engine!r}; choose one of {', '.join(ENGINES)}")
    for field in ("batch", "threads", "inter_op_threads"):
        if getattr(spec, field) < 1:
            raise EngineError(f"{field} must be at least 1, got {getattr(spec, field)}")
    kind = None if spec.engine == "null" else model_kind(spec.model)
    engine = _resolve(spec.engine, spec.precision, kind)
    if spec.precision not in SUPPORTED[engine]:
        raise EngineError(
            f"engine {engine} does not support {spec.precision}; it supports "
            f"{', '.join(SUPPORTED[engine])} ({_engines_for(spec.precision)} supports "
            f"{spec.precision})"
        )
    if kind == "tflite" and engine != "tflite":
        raise EngineError(f"a .tflite model runs only on the tflite engine, not {engine}")
    return dataclasses.replace(spec, engine=engine)


def _resolve(engine: str, precision: str, kind: str | None) -> str:
    if engine != "auto":
        return engine
    return "tflite" if kind == "tflite" else DEFAULT_ENGINE[precision]


def _engines_for(precision: str) -> str:
    return " and ".join(e for e, p in SUPPORTED.items() if precision in p and e != "null")


def _onednn_off() -> bool:
    """TF's own rule: oneDNN is on by default on x86 Linux unless set to 0 or false."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")
