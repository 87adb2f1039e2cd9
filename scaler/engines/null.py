"""The null engine: serves queries without inferring, to measure the harness's own cost.

It imports neither TensorFlow nor numpy, so a null worker starts in a fraction of a second
and its timed loop measures only the worker's own per-query work.

With a fixed service time it stands in for a model whose every query takes exactly that
long, whatever the CPU: tests decide with it instead of with a real model's speed. The time
is ``EngineSpec.service_s`` (the worker spec's ``service_s``) or, when that is 0, the
environment's ``SCALER_NULL_SERVICE_S``; ``SCALER_NULL_SPEED`` divides it (0.2: a machine
5x slower, 5: 5x faster), so a test suite can run its speed-sensitive parts as on slower and
faster machines. A query waits on the monotonic clock: it sleeps through all but the last
millisecond and spins through that (a sleep alone overshoots short times by its timer slack).
"""

from __future__ import annotations

import os
import time
from typing import Any

from scaler.engines.base import PRECISIONS, EngineError, EngineSpec
from scaler.engines.registry import EngineType, register

SPIN_S = 0.001  # the last part of a query's wait is spun, not slept


def service_time_s(spec: EngineSpec) -> float:
    """The fixed service time of one query (s): the spec's, else the environment's, divided
    by ``SCALER_NULL_SPEED``."""
    try:
        base = float(spec.service_s or os.environ.get("SCALER_NULL_SERVICE_S") or 0.0)
        speed = float(os.environ.get("SCALER_NULL_SPEED") or 1.0)
    except ValueError as exc:
        raise EngineError(f"null engine: not a number ({exc})") from None
    if base < 0 or speed <= 0:
        raise EngineError("null engine: the service time must be >= 0 and the speed > 0")
    return base / speed


class NullEngine:
    """``infer`` returns at once, or after exactly its fixed service time; ``make_input`` is
    a tiny placeholder object."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        self.spec = spec
        self.service_ns = int(service_time_s(spec) * 1e9)
        self.info: dict[str, Any] = {
            "engine": "null",
            "precision": spec.precision,
            "model": spec.model,
            "batch": spec.batch,
            "threads": spec.threads,
            "service_s": self.service_ns / 1e9,
            "load_s": round(time.perf_counter() - started, 6),
        }
        if self.service_ns:
            self.infer = self._wait  # type: ignore[method-assign]

    def make_input(self) -> Any:
        return (self.spec.batch,)

    def infer(self, inputs: Any) -> None:
        return None

    def _wait(self, inputs: Any) -> None:
        clock = time.monotonic_ns
        end = clock() + self.service_ns
        sleep_ns = end - clock() - int(SPIN_S * 1e9)
        if sleep_ns > 0:
            time.sleep(sleep_ns / 1e9)
        while clock() < end:
            pass

    def close(self) -> None:
        return None


ENGINE = register(EngineType(
    name="null", summary="no inference: measures the harness itself",
    precisions=PRECISIONS, load=NullEngine, accepts=(), infers=False,
    memory_gb=(0.05, 0.0)))
