"""The anchor: ``scaler``'s throughput against OpenVINO's own ``benchmark_app`` on the same IR.

For one precision and batch, the bench alternates two children, several rounds, swapping
which goes first every round so drift and neighbours hit both alike:

- ``scaler throughput --engine openvino --placement pinned`` as a user runs it: one worker
  pinned to the whole-machine partition, threads = its CPUs, one stream, OpenVINO's pinning
  off, no hint; its images/s over the common window;
- ``benchmark_app`` (shipped in the openvino wheel) on the very IR that worker loaded (the
  cache entry it reports), pinned with ``sched_setaffinity`` to the same CPUs, with the same
  settings spelled as benchmark_app spells them: ``-hint none -nstreams 1 -nthreads N -pin NO
  -nireq 1 -infer_precision P -ip f32 -shape [B,...]``; its "Throughput: X FPS" line.
  ``-ip f32`` matters: by default benchmark_app feeds an input it takes for an image (3
  channels, NHWC) as u8 and adds a conversion to the model, so it would run another model.

The ratio scaler / benchmark_app per round says whether the harness slows the engine (goal
>= 0.97). The median of R paired ratios is quoted with the range of the R ratios, which
covers the true median with probability 1 - 2^(1-R) (sign test). What each side's OpenVINO
read back (streams, threads, pinning) is kept, so a difference of configuration would show.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ENGINE = "openvino"  # the engine whose vendor benchmark anchors the harness
# benchmark_app's read-back lines after compilation, e.g. "[ INFO ]   NUM_STREAMS: 1"
READ_BACK = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "ENABLE_CPU_PINNING", "PERFORMANCE_HINT",
             "INFERENCE_PRECISION_HINT", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")
HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # as the engine's compile_config


def benchmark_app_argv() -> list[str]:
    """The ``benchmark_app`` console script of this environment, else its module."""
    script = Path(sys.executable).with_name("benchmark_app")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "openvino.tools.benchmark.main"]


def run_scaler(precision: str, model: str, batch: int, seconds: float, warmup_s: float,
               cache_dir: str | None, out: Path, timeout_s: float = 1800) -> dict[str, Any]:
    """One ``scaler throughput`` child; its images/s and what its worker reported."""
    from scaler.bench.startup import scaler_argv

    argv = [*scaler_argv(), "throughput", "--engine", ENGINE, "--precision", precision,
            "--model", model, "--batch", str(batch), "--placement", "pinned",
            "--min-duration", str(seconds), "--min-queries", "3", "--warmup", str(warmup_s),
            "--out", str(out), "--json"]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"scaler throughput failed: {tail[0]}")
    summary = json.loads(done.stdout)
    doc = json.loads((Path(summary["run"]) / "run.json").read_text())
    instance = doc["groups"][0]["per_instance"][0]
    info = instance["engine"]
    return {"images_per_s": summary["throughput_ips"], "queries": summary["queries"],
            "latency_p50_ms": (summary.get("latency_ms") or {}).get("p50"),
            "cpus": instance["binding"]["cpus"], "threads": instance["threads"],
            "ir": str(Path(info["cache_path"]) / "model.xml") if info.get("cache_path") else None,
            "input_shape": info["input_shape"], "compiled": info["compiled"],
            "executed_precisions": info["executed_precisions"], "command": argv}


def run_benchmark_app(xml: str, precision: str, shape: list[int], cpus: list[int],
                      seconds: float, timeout_s: float = 1800) -> dict[str, Any]:
    """One ``benchmark_app`` child pinned to ``cpus``; its FPS, latency and read-back."""
    argv = [*benchmark_app_argv(), "-m", xml, "-d", "CPU", "-hint", "none", "-nstreams", "1",
            "-nthreads", str(len(cpus)), "-pin", "NO", "-nireq", "1",
            "-infer_precision", HINT[precision], "-ip", "f32",
            "-shape", "[" + ",".join(map(str, shape)) + "]",
            "-t", str(max(1, round(seconds)))]  # benchmark_app takes whole seconds
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if done.returncode != 0:
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        raise RuntimeError(f"benchmark_app failed: {lines[-1] if lines else done.returncode}")
    return {**parse_benchmark_app(done.stdout), "cpus": cpus, "command": argv}


def parse_benchmark_app(text: str) -> dict[str, Any]:
    """Throughput, iterations, duration, median latency and read-back properties."""
    def number(label: str) -> float | None:
        match = re.search(rf"{label}:\s+([0-9.]+)", text)
        return float(match.group(1)) if match else None

    fps = number("Throughput")
    if fps is None:
        raise RuntimeError("benchmark_app printed no 'Throughput:' line")
    compiled = {}
    for name in READ_BACK:
        match = re.search(rf"^\[ INFO \]\s+{name}: (.+)$", text, re.MULTILINE)
        if match:
            compiled[name] = match.group(1).strip()
    # the input's element type as configured: the first input listed after "Configuring
    # input of the model" (e.g. "keras_tensor (node: keras_tensor) : f32 / [...] / [1,..]")
    configured = text.partition("Configuring input of the model")[2]
    match = re.search(r"^\[ INFO \]\s+\S+ \(node: [^)]*\) : (\w+) / ", configured, re.MULTILINE)
    return {"images_per_s": fps, "iterations": number("Count"),
            "duration_ms": number("Duration"), "latency_p50_ms": number("Median"),
            "input_type": match.group(1) if match else None, "compiled": compiled}


def measure_anchor(precision: str, model: str, batch: int, cpus: list[int], rounds: int,
                   seconds: float, warmup_s: float, workdir: Path,
                   cache_dir: str | None = None) -> dict[str, Any]:
    """``rounds`` interleaved pairs of scaler and benchmark_app at one precision and batch.

    Round 0 runs scaler first (it converts the model into the cache on a miss, and names
    the IR); later rounds alternate the order.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pairs = []
    with tempfile.TemporaryDirectory(prefix=".anchor-", dir=workdir) as tmp:
        xml = shape = None
        for r in range(rounds):
            order = ("scaler", "benchmark_app") if r % 2 == 0 else ("benchmark_app", "scaler")
            pair: dict[str, Any] = {"round": r, "order": list(order)}
            for side in order:
                if side == "scaler":
                    pair["scaler"] = run_scaler(precision, model, batch, seconds, warmup_s,
                                                cache_dir, Path(tmp))
                    if xml is None:
                        xml, shape = pair["scaler"]["ir"], pair["scaler"]["input_shape"]
                        if xml is None:
                            raise RuntimeError("the scaler worker reported no cached IR")
                else:
                    pair["benchmark_app"] = run_benchmark_app(xml, precision, shape, cpus,
                                                              seconds)
            pair["ratio"] = (pair["scaler"]["images_per_s"]
                             / pair["benchmark_app"]["images_per_s"])
            pairs.append(pair)
    return {"precision": precision, "model": model, "batch": batch, "cpus": cpus,
            "seconds": seconds, "ir": xml, **summarize_pairs(pairs), "pairs": pairs}


def summarize_pairs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [p["ratio"] for p in pairs]
    return {"rounds": len(pairs),
            "scaler_images_per_s": statistics.median(p["scaler"]["images_per_s"] for p in pairs),
            "benchmark_app_images_per_s": statistics.median(
                p["benchmark_app"]["images_per_s"] for p in pairs),
            "median_ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            # the range of n paired ratios covers their median with 1 - 2^(1-n) (sign test)
            "range_confidence": 1 - 2.0 ** (1 - len(ratios)) if len(ratios) > 1 else None}
