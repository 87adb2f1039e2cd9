"""Start-up: from invoking ``scaler`` to its first timed query, and ``scaler --help``.

The clock starts just before the bench spawns ``scaler latency ...`` as a user would (the
console script) and stops at the first timed query's start, read back from the run folder's
raw samples. Both are CLOCK_MONOTONIC (``time.monotonic_ns`` here, the worker's
``start_ns`` there), so they subtract directly. Between them lie Python and CLI start, the
coordinator, the worker's own start, pinning, model load (and for a cold cache the
conversion in a child), the READY handshake and one warm-up query (``--warmup 0``
still runs one, so the first timed query never pays one-time costs).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# modules `scaler --help` must not import: each costs from 0.1 s (numpy) to 2 s (TensorFlow)
HEAVY = ("tensorflow", "keras", "numpy", "matplotlib", "numba", "llvmlite", "ai_edge_litert",
         "openvino", "nncf", "scipy", "uvloop")


def scaler_argv() -> list[str]:
    """The ``scaler`` console script of this environment, else ``python -m scaler``."""
    script = Path(sys.executable).with_name("scaler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scaler"]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def time_to_first_query(engine: str, precision: str, model: str, out: Path,
                        cache_dir: str | None, timeout_s: float = 1800) -> dict[str, Any]:
    """Seconds from spawning ``scaler latency`` to its first timed query, and what the worker
    reported about its load (cache hit or miss, conversion time)."""
    from scaler import results

    argv = [*scaler_argv(), "latency", "--engine", engine, "--precision", precision,
            "--model", model, "--min-duration", "0", "--min-queries", "1", "--warmup", "0",
            "--out", str(out), "--json"]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    t0 = time.monotonic_ns()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, env=_env())
    t_end = time.monotonic_ns()
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"scaler latency --engine {engine} failed: {tail[0]}")
    run = results.load_run(json.loads(done.stdout)["run"])
    first_ns = int(run.samples()["g0_i0_start_ns"][0])
    if not t0 < first_ns < t_end:
        raise RuntimeError("the first query's time is outside the command's lifetime: "
                           "not the same monotonic clock?")
    instance = run.doc["groups"][0]["per_instance"][0]
    info = instance.get("engine") or {}
    return {"engine": engine, "precision": precision, "model": model,
            "seconds": (first_ns - t0) / 1e9, "command_wall_s": (t_end - t0) / 1e9,
            "worker_load_s": instance.get("load_s"), "cache": info.get("cache"),
            "conversion_s": info.get("conversion_s"), "command": argv}


def measure_startup(runs: list[tuple[str, str, str]], cache_run: tuple[str, str, str],
                    workdir: Path) -> dict[str, Any]:
    """``cache_run`` (engine, precision, model) cold (empty cache folder) then warm (same
    folder), then each of ``runs`` once; run folders and the cache live in a temporary
    folder."""
    out: dict[str, Any] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    engine, precision, model = cache_run
    with tempfile.TemporaryDirectory(prefix=".startup-", dir=workdir) as tmp:
        cache = str(Path(tmp) / "cache")
        for label in ("cold", "warm"):
            out[f"{engine}_{precision}_{label}"] = time_to_first_query(
                engine, precision, model, Path(tmp), cache)
        for run in runs:
            out[f"{run[0]}_{run[1]}"] = time_to_first_query(*run, Path(tmp), None)
    cold, warm = (out[f"{engine}_{precision}_{label}"]["cache"] for label in ("cold", "warm"))
    out["cache_as_expected"] = cold == "miss" and warm == "hit"
    return out


def measure_help(reps: int) -> dict[str, Any]:
    """Median wall time of ``scaler --help``, and which heavy modules it imported (from
    ``PYTHONPROFILEIMPORTTIME`` in one extra run, kept apart because it slows the import)."""
    argv = [*scaler_argv(), "--help"]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=60, env=_env())
        times.append(time.perf_counter() - t0)
    traced = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60,
                            env={**_env(), "PYTHONPROFILEIMPORTTIME": "1"})
    modules = imported_modules(traced.stderr)
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    return {"median_s": statistics.median(times), "all_s": times, "command": argv,
            "modules_imported": len(modules), "heavy_modules": heavy,
            "imports_tensorflow": "tensorflow" in heavy}


def imported_modules(importtime_stderr: str) -> list[str]:
    """Module names from ``-X importtime`` lines: ``import time: self | cumulative | name``."""
    names = []
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.append(name)
    return names
