"""The engine interface: what a worker needs from an inference runtime.

A worker builds an ``EngineSpec`` from its command line, calls ``load_engine(spec)`` once
(after pinning and thread settings are applied), makes its synthetic inputs once with
``engine.make_input()``, and then calls ``engine.infer(inputs)`` in its timed loop. Every
heavy import (TensorFlow, LiteRT) happens inside ``load_engine``, never at module import.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Protocol

from scaler.errors import UsageError

PRECISIONS = ("fp32", "bf16", "int8")
# How a runtime's own threads wait and bind (``--threading``): ``tuned`` (passive waits, no
# self-pinning of unpinned instances: scaler's default), ``defaults`` (each runtime out of
# the box), ``model-zoo`` (Intel Model Zoo's launcher: compact binding of thread k to the
# k-th allowed core, blocktime 1 ms). An engine declares the styles it can express.
THREADING_STYLES = ("tuned", "defaults", "model-zoo")


class EngineError(UsageError):
    """An engine, precision or model that cannot be used here (exit code 2)."""


@dataclass(frozen=True)
class EngineSpec:
    """What to run: requested by the coordinator, applied by the worker."""

    engine: str = "auto"  # auto: the default engine for the precision (check_spec)
    precision: str = "fp32"
    model: str = "resnet50"  # a built-in name or a path (SavedModel dir, .keras, .tflite)
    batch: int = 1
    threads: int = 1  # intra-op threads, from the partition (never os.cpu_count())
    inter_op_threads: int = 1
    cache_dir: str | None = None  # converted-model cache; None = the default cache folder
    seed: int = 0
    threading: str = "tuned"  # one of THREADING_STYLES, applied by the engine when it loads
    isa: str = "native"  # the newest ISA its kernels may use (isa_caps: set before loading)
    service_s: float = 0.0  # the null engine's fixed service time per query (0: none)


class Engine(Protocol):
    """A loaded model ready to serve queries of ``spec.batch`` inputs."""

    spec: EngineSpec
    # engine, precision, model, input_shape, library versions, accelerator library use
    # (onednn/xnnpack), load_s, ...: recorded in results as what really ran
    info: dict[str, Any]

    def make_input(self) -> Any:
        """Synthetic inputs for one query, made once before the timed loop."""
        ...

    def infer(self, inputs: Any) -> None:
        """Run one query synchronously; returns when the outputs are computed."""
        ...

    def close(self) -> None: ...


def installed_version(distributions: tuple[str, ...]) -> str | None:
    """The version of the first of ``distributions`` that is installed (None: none is)."""
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
