"""The null engine: serves queries without inferring, to measure the harness's own cost.

It imports neither TensorFlow nor numpy, so a null worker starts in a fraction of a second
and its timed loop measures only the worker's own per-query work.
"""

from __future__ import annotations

import time
from typing import Any

from scaler.engines.base import PRECISIONS, THREADING_STYLES, EngineSpec
from scaler.engines.registry import EngineType, register


class NullEngine:
    """``infer`` returns at once; ``make_input`` is a tiny placeholder object."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        self.spec = spec
        self.info: dict[str, Any] = {
            "engine": "null",
            "precision": spec.precision,
            "model": spec.model,
            "batch": spec.batch,
            "threads": spec.threads,
            # no runtime threads: every --threading style runs the same (nothing to bind)
            "threading": f"{spec.threading} (no runtime threads)",
            "load_s": round(time.perf_counter() - started, 6),
        }

    def make_input(self) -> Any:
        return (self.spec.batch,)

    def infer(self, inputs: Any) -> None:
        return None

    def close(self) -> None:
        return None


ENGINE = register(EngineType(
    name="null", summary="no inference: measures the harness itself",
    precisions=PRECISIONS, load=NullEngine, accepts=(), infers=False,
    memory_gb=(0.05, 0.0), threading=THREADING_STYLES,
    isa_caps=True))  # no kernels: a cap is recorded, nothing runs
