"""How much memory one worker holds, for every engine and model, and the check before workers
start.

A worker reports its peak resident memory after warm-up in its ``ready`` message
(``rss_peak_bytes``); the coordinator records the largest seen per engine, model, precision
and batch in the model cache (``footprints.json``), so the next run checks with what this
model really took. Before a model has been measured the estimate is conservative: the
engine's figures for ResNet50 (``EngineType.memory_gb``), plus the model file's size when
the model is a file larger than that. :func:`check` refuses a group that cannot fit, before
any of its workers starts.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from scaler.errors import UsageError

FILE = "footprints.json"
MARGIN = 1.25  # a measured footprint is scaled by this (allocator slack, a larger input)
GIB = 2**30


def _key(engine: str, model: str, precision: str, batch: int) -> str:
    if os.sep in model or os.path.exists(model):  # a file: its name, size and time
        try:
            st = os.stat(model)
            model = f"{os.path.realpath(model)}:{st.st_size}:{int(st.st_mtime)}"
        except OSError:
            pass
    return f"{engine}|{model}|{precision}|{batch}"


def _path(cache_dir: str | None) -> Path:
    from scaler.engines.cache import cache_root

    return cache_root(cache_dir) / FILE


def _read(cache_dir: str | None) -> dict[str, Any]:
    try:
        data = json.loads(_path(cache_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measured_gb(engine: str, model: str, precision: str, batch: int,
                cache_dir: str | None = None) -> float | None:
    value = _read(cache_dir).get(_key(engine, model, precision, batch))
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1 << 50:
        return value / GIB
    return None


def record(engine: str, model: str, precision: str, batch: int, rss_bytes: int,
           cache_dir: str | None = None) -> None:
    """Keep the largest footprint seen for this engine, model, precision and batch (best
    effort: a cache that cannot be written only loses the measurement)."""
    if not isinstance(rss_bytes, int) or rss_bytes <= 0:
        return
    key = _key(engine, model, precision, batch)
    data = _read(cache_dir)
    if isinstance(data.get(key), int) and data[key] >= rss_bytes:
        return
    data[key] = rss_bytes
    path = _path(cache_dir)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, path)


class Footprint(float):
    """GiB one worker needs, saying where the figure comes from (``source``)."""

    source = "estimated"

    def __new__(cls, gb: float, source: str) -> Footprint:
        out = super().__new__(cls, gb)
        out.source = source
        return out


def estimate_gb(engine: str, model: str, precision: str, batch: int,
                cache_dir: str | None = None) -> Footprint:
    """GiB one worker needs: measured (with a margin) once this model ran, else the engine's
    ResNet50 figures (or more for a large model file): conservative for small models."""
    measured = measured_gb(engine, model, precision, batch, cache_dir)
    if measured is not None:
        return Footprint(measured * MARGIN, "measured")
    from scaler.engines import worker_memory_gb

    gb = worker_memory_gb(engine, batch)
    with contextlib.suppress(OSError):
        if os.path.isfile(model):
            gb = max(gb, 0.1 + 3 * os.path.getsize(model) / GIB)
    return Footprint(gb, "estimated: not measured yet")


def preflight(settings: Any, topology: Any, spec: Any) -> None:
    """Every local placement of the run at its largest instance count, before any worker
    starts (placements with their own check, VMs and a fleet's hosts, check theirs)."""
    from scaler import fleets, placements
    from scaler.placements.base import Placement, available_memory_bytes

    choice = fleets.wanted(settings)
    if choice is not None and fleets.get(choice.provider).checks_own_memory:
        return  # its machines' memory is checked once they are probed (ssh: FleetPlacement)
    batch = settings.serve_max_batch or settings.batch
    worker_gb = estimate_gb(spec.engine, spec.model, spec.precision, batch, spec.cache_dir)
    n = max(settings.instances)
    for name in settings.placements:
        placement = placements.get(name)
        if type(placement).check_memory is Placement.check_memory:
            check(n, worker_gb, worker_gb.source, spec.engine, spec.model, batch,
                  available_memory_bytes())


def check(n: int, worker_gb: float, source: str, engine: str | None, model: str, batch: int,
          available: int | None, where: str = "this machine") -> None:
    """Refuse ``n`` workers of ``worker_gb`` each that ``available`` bytes cannot hold."""
    need = n * worker_gb * GIB
    if available is not None and need > available:
        raise UsageError(
            f"{n} {engine or 'default'} worker(s) of {_short(model)} at batch {batch} need about "
            f"{need / GIB:.1f} GiB ({worker_gb:.2f} GiB each, {source}) but {where} has only "
            f"{available / GIB:.1f} GiB available: use fewer instances or a smaller --batch")


def _short(model: str) -> str:
    return model if len(model) <= 60 else "..." + model[-57:]


def rss_peak_bytes() -> int | None:
    """This process's peak resident memory (VmHWM), for the worker's ready report."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
