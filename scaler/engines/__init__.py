"""Inference engines: ``check_spec`` validates a request, ``load_engine`` loads it.

Each engine registers itself (``scaler.engines.registry``); this module only reads the
registry. The coordinator calls ``check_spec`` in the parent before spawning workers, and the
CLI imports this package for validation, so nothing here imports TensorFlow or numpy: an
engine's runtime is imported by its ``load``, in the already pinned worker.
"""

from __future__ import annotations

import dataclasses

from scaler.engines import isa_caps
from scaler.engines.base import PRECISIONS, THREADING_STYLES, Engine, EngineError, EngineSpec
from scaler.engines.models import model_kind
from scaler.engines.registry import (
    EngineType,
    default_engine,
    engine_for_suffix,
    engines,
    engines_accepting,
    engines_for,
    get,
)

__all__ = ["Engine", "EngineError", "EngineSpec", "EngineType", "check_spec", "load_engine",
           "worker_memory_gb"]


def check_spec(spec: EngineSpec, isa: tuple[str, ...]) -> EngineSpec:
    """``spec`` with its engine resolved; EngineError naming what is supported if unusable.

    ``isa`` is the CPU's feature flags. ``engine="auto"`` picks the default engine for the
    precision, or the engine that alone runs the model's file format; an explicit
    unsupported pair is an error, never a silent fallback.
    """
    spec = _validated(spec)
    engine = get(spec.engine)
    if spec.isa != isa_caps.NATIVE:
        if not engine.isa_caps:
            why = f": {engine.isa_note}" if engine.isa_note else ""
            able = ", ".join(e.name for e in engines().values() if e.isa_caps and e.infers)
            raise EngineError(f"engine {engine.name} cannot cap its kernels' instruction set "
                              f"(--isa {spec.isa}){why}; use --isa native, or an engine whose "
                              f"kernels are oneDNN's ({able})")
        isa_caps.check_cpu(spec.isa, isa)
    if engine.check is not None:
        engine.check(spec, isa)
    return spec


def load_engine(spec: EngineSpec) -> Engine:
    """Load the engine in this (already pinned) process; heavy imports happen here."""
    spec = _validated(spec)
    return get(spec.engine).load(spec)


def worker_memory_gb(engine: str, batch: int) -> float:
    """Resident memory of one worker of ``engine`` at ``batch`` (built-in ResNet50 model)."""
    return get(engine).worker_memory_gb(batch)


def _validated(spec: EngineSpec) -> EngineSpec:
    """Every check but the CPU's: ``load_engine`` repeats them, it has no ISA list."""
    if spec.precision not in PRECISIONS:
        raise EngineError(
            f"unknown precision {spec.precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    if spec.engine != "auto":
        get(spec.engine)  # unknown engine: the error lists the registered ones
    spec = dataclasses.replace(spec, isa=isa_caps.resolve(spec.isa))
    for field in ("batch", "threads", "inter_op_threads"):
        if getattr(spec, field) < 1:
            raise EngineError(f"{field} must be at least 1, got {getattr(spec, field)}")
    native = engine_for_suffix(spec.model)
    if spec.engine == "auto":
        engine = get(native.name if native else default_engine(spec.precision))
    else:
        engine = get(spec.engine)
    kind = model_kind(spec.model) if engine.infers else None
    if spec.precision not in engine.precisions:
        raise EngineError(
            f"engine {engine.name} does not support {spec.precision}; it supports "
            f"{', '.join(engine.precisions)} ({_who_supports(spec.precision)})"
        )
    if kind is not None and kind not in engine.accepts:
        able = engines_accepting(kind)
        owner = f" only on the {able[0]} engine" if len(able) == 1 else (
            f" on the {' or '.join(able)} engine" if able else "")
        raise EngineError(f"a {kind} model runs{owner}, not on {engine.name}")
    if spec.threading not in THREADING_STYLES:
        raise EngineError(f"unknown threading style {spec.threading!r}; choose from "
                          f"{', '.join(THREADING_STYLES)}")
    if spec.threading not in engine.threading:
        raise EngineError(f"engine {engine.name} cannot express --threading {spec.threading}; "
                          f"it expresses {', '.join(engine.threading)} (see the README)")
    return dataclasses.replace(spec, engine=engine.name)


def _who_supports(precision: str) -> str:
    names = engines_for(precision)
    return f"{names} support{'' if ' and ' in names else 's'} {precision}"
