"""The onnxruntime anchor: ``scaler``'s throughput against a bare ``InferenceSession.run`` loop.

ONNX Runtime's wheel ships no benchmark tool like OpenVINO's ``benchmark_app`` (its C++
``onnxruntime_perf_test`` is built from source only; ``onnxruntime_test``, the wheel's one
script, times a loop without thread options or pinning). The anchor is then the least a
user's own program does, in a child of its own: ``python -m scaler.bench.ort_anchor``
opens the very ONNX file the scaler worker loaded, with the session options that worker
read back from its session (thread counts and config entries), pinned with
``sched_setaffinity`` to the same CPUs, feeds the same uniform [0, 1) float32 batch, warms up
as long, and counts ``run`` calls over the window.

For one precision and batch the bench alternates the two children for several rounds,
swapping which goes first every round; the ratio scaler / bare per round says whether the
harness slows the engine (goal >= 0.97, as for benchmark_app). The median of R paired ratios
is quoted with the range of the R ratios, which covers the true median with probability
1 - 2^(1-R) (sign test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENGINE = "onnxruntime"  # the engine this anchor measures
TOOL = "bare InferenceSession.run loop"


def run_scaler(precision: str, model: str, batch: int, seconds: float, warmup_s: float,
               cache_dir: str | None, out: Path, timeout_s: float = 1800) -> dict[str, Any]:
    """One ``scaler throughput --engine onnxruntime --placement pinned`` child."""
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
            "cpus": instance["binding"]["cpus"], "threads": instance["threads"],
            "onnx": info.get("cache_path"), "input_shape": info["input_shape"],
            "session": info["threading"]["session"], "command": argv}


def run_bare(onnx: str, shape: list[int], session: dict[str, Any], cpus: list[int],
             seconds: float, warmup_s: float, timeout_s: float = 1800) -> dict[str, Any]:
    """One bare-loop child pinned to ``cpus`` with ``session``'s options."""
    argv = [sys.executable, "-m", "scaler.bench.ort_anchor", onnx,
            "--shape", ",".join(map(str, shape)), "--session", json.dumps(session),
            "--seconds", str(seconds), "--warmup", str(warmup_s)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"the bare loop failed: {lines[-1] if lines else done.returncode}")
    return {**json.loads(done.stdout.splitlines()[-1]), "cpus": cpus, "command": argv}


def measure_anchor(precision: str, model: str, batch: int, cpus: list[int], rounds: int,
                   seconds: float, warmup_s: float, workdir: Path,
                   cache_dir: str | None = None) -> dict[str, Any]:
    """``rounds`` interleaved pairs of scaler and the bare loop at one precision and batch.

    Round 0 runs scaler first (it converts the model into the cache on a miss and names the
    ONNX file and session options); later rounds alternate the order."""
    workdir.mkdir(parents=True, exist_ok=True)
    pairs: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix=".anchor-ort-", dir=workdir) as tmp:
        for r in range(rounds):
            order = ("scaler", "bare") if r % 2 == 0 else ("bare", "scaler")
            pair: dict[str, Any] = {"round": r, "order": list(order)}
            for side in order:
                if side == "scaler":
                    pair["scaler"] = run_scaler(precision, model, batch, seconds, warmup_s,
                                                cache_dir, Path(tmp))
                    first = first or pair["scaler"]
                    if first["onnx"] is None:
                        raise RuntimeError("the scaler worker reported no cached ONNX file")
                else:
                    assert first is not None  # round 0 runs scaler first
                    pair["bare"] = run_bare(first["onnx"], first["input_shape"],
                                            first["session"], cpus, seconds, warmup_s)
            pair["ratio"] = pair["scaler"]["images_per_s"] / pair["bare"]["images_per_s"]
            pairs.append(pair)
    ratios = [p["ratio"] for p in pairs]
    return {"precision": precision, "model": model, "batch": batch, "cpus": cpus,
            "seconds": seconds, "onnx": first["onnx"] if first else None, "rounds": len(pairs),
            "scaler_images_per_s": statistics.median(p["scaler"]["images_per_s"] for p in pairs),
            "tool_images_per_s": statistics.median(p["bare"]["images_per_s"] for p in pairs),
            "median_ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "range_confidence": 1 - 2.0 ** (1 - len(ratios)) if len(ratios) > 1 else None,
            "pairs": pairs}


def bare_loop(onnx: str, shape: list[int], session: dict[str, Any], seconds: float,
              warmup_s: float) -> dict[str, Any]:
    """The loop a user writes: open the session, warm up, count ``run`` calls."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = session["intra_op_num_threads"]
    options.inter_op_num_threads = session["inter_op_num_threads"]
    for key, value in session.get("config", {}).items():
        options.add_session_config_entry(key, value)
    sess = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name:
            np.random.default_rng(0).random(tuple(shape), dtype=np.float32)}
    clock = time.monotonic
    end = clock() + warmup_s
    sess.run(None, feed)
    while clock() < end:
        sess.run(None, feed)
    n, t0 = 0, clock()
    end = t0 + seconds
    while True:
        sess.run(None, feed)
        n += 1
        t1 = clock()
        if t1 >= end:
            break
    from scaler.engines.ort_threading import read_back_options

    return {"images_per_s": n * shape[0] / (t1 - t0), "iterations": n,
            "duration_s": t1 - t0, "session": read_back_options(sess)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaler.bench.ort_anchor")
    p.add_argument("onnx")
    p.add_argument("--shape", required=True)
    p.add_argument("--session", required=True, help="JSON: the worker's session read-back")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, default=0.0)
    args = p.parse_args(argv)
    shape = [int(d) for d in args.shape.split(",")]
    result = bare_loop(args.onnx, shape, json.loads(args.session), args.seconds, args.warmup)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
