"""ONNX Runtime's spin back-off measured on this machine: the CPU its idle pool threads burn
over idle gaps of known lengths after a run, and the window that follows from it.

What ORT does (``include/onnxruntime/core/platform/EigenNonBlockingThreadPool.h``,
``ThreadPoolTempl::WorkerLoop``, microsoft/onnxruntime): a pool thread whose queue is empty
spins ``spin_count = allow_spinning_ ? 1 << 20 : 0`` iterations of ``PopFront`` (a steal
attempt every ``spin_count / 100``) and ``SpinPause()`` (x86 ``_mm_pause``), then blocks on
its condition variable (``SetBlocked``). ``session.intra_op.allow_spinning`` (default 1) sets
``allow_spinning_``. The window is so a count of pause iterations, not a time: its length
depends on the CPU's pause latency, hence measured here, never assumed across machines.

The measurement (:func:`measure`) runs in a child process (its pool threads die with it):
a small MatMul + Relu graph built in code, a session with a ``--threading`` style's options
(``ort_threading.plan_threads``), warm-up runs, then per repeat every gap in a shuffled
order: one run (the pool threads work, then start to spin), and over ``sleep(gap)`` the
process's CPU time minus the calling thread's (``time.process_time`` and
``time.thread_time``, nanosecond clocks), divided by the pool threads (intra-op threads - 1:
ORT never makes the caller spin in the gap). ``scaler.spinwindow.summarize`` turns the
series into the window with its spread over repeats. CPU time, not wall time, is the
measure: what matters to other instances is how much CPU the spinners take, and a spinner
that is descheduled on a loaded machine burns the same budget later.

Run it on a quiet machine: ``python -m scaler.engines.ort_spin --out spin-window.json``
(``scaler simulate --spin-window spin-window.json`` reads the file).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scaler.engines.base import EngineError

GAPS_MS = (0.2, 1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 400.0)
REPEATS = 5
WARMUP_RUNS = 20
MATRIX = 256  # the MatMul's side: about a millisecond on one core, enough to wake the pool
SCHEMA = "scaler.spin_window/1"


def tiny_model(size: int = MATRIX, seed: int = 0) -> bytes:
    """A float32 ``y = relu(x @ W)`` ONNX graph of ``size`` x ``size`` matrices (bytes)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(seed).random((size, size), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "spin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [size, size])],
        [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def gap_series(style: str, threads: int, gaps_ms: tuple[float, ...], repeats: int,
               seed: int = 0) -> dict[str, Any]:
    """In this process, confined to one CPU of each of ``threads`` physical cores (the
    window is per thread; a few threads keep every one of them woken by each run): per
    repeat, the CPU per pool thread (ms) over each gap (ms)."""
    import numpy as np
    import onnxruntime as ort

    from scaler.engines import ort_threading

    cores = ort_threading.allowed_cores(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, {cpus[0] for _, cpus in cores})
    plan = ort_threading.plan_threads(style, len(cores), 1)
    session = ort.InferenceSession(tiny_model(), ort_threading.session_options(plan),
                                   providers=["CPUExecutionProvider"])
    pool = plan.intra_op_threads - 1
    if pool < 1:
        raise EngineError(f"--threading {style} gives {plan.intra_op_threads} intra-op "
                          "thread here: no pool thread to spin (needs 2+ CPUs)")
    feed = {"x": np.random.default_rng(seed).random((MATRIX, MATRIX), dtype=np.float32)}
    for _ in range(WARMUP_RUNS):
        session.run(None, feed)
    order = random.Random(seed)
    series = []
    for _ in range(repeats):
        gaps = list(gaps_ms)
        order.shuffle(gaps)
        cpu, wall = [], []
        for gap in gaps:
            session.run(None, feed)
            p0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
            time.sleep(gap / 1000.0)
            p1, t1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
            cpu.append(((p1 - p0) - (t1 - t0)) * 1000.0 / pool)
            wall.append((w1 - w0) * 1000.0)
        series.append({"gaps_ms": gaps, "wall_ms": wall, "cpu_per_pool_thread_ms": cpu})
    return {"style": style, "version": ort.__version__,
            "intra_op_threads": plan.intra_op_threads, "pool_threads": pool,
            "config": plan.config, "series": series}


def measure(style: str = "defaults", threads: int = 2,
            gaps_ms: tuple[float, ...] = GAPS_MS, repeats: int = REPEATS,
            timeout_s: float = 120.0) -> dict[str, Any]:
    """Measure ``style``'s spin window in a child process on ``threads`` cores; the series
    and the window (``spinwindow.summarize`` over the repeats, fitted on the measured wall
    gaps)."""
    from scaler import spinwindow
    from scaler.engines.ort_threading import STYLES

    if style not in STYLES:
        raise ValueError(f"unknown threading style {style!r}: choose from {', '.join(STYLES)}")
    if repeats < 1 or len(set(gaps_ms)) < 2 or min(gaps_ms) <= 0:
        raise ValueError("a spin measurement needs 1+ repeats and 2+ positive gap lengths")
    cmd = [sys.executable, "-m", "scaler.engines.ort_spin", "--child", style, str(threads),
           str(repeats), ",".join(f"{g:g}" for g in gaps_ms)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"the spin measurement of {style} did not end within "
                          f"{timeout_s:g} s") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EngineError(f"the spin measurement of {style} failed: {last}")
    raw = json.loads(done.stdout)
    fit = spinwindow.summarize([(r["wall_ms"], r["cpu_per_pool_thread_ms"])
                                for r in raw["series"]])
    return {"schema": SCHEMA, "runtime": "onnxruntime",
            "method": "CPU per pool thread over idle gaps after a run; knee of "
                      "rate x min(gap, window) per repeat (scaler.spinwindow)",
            "source": "EigenNonBlockingThreadPool.h ThreadPoolTempl::WorkerLoop: 2^20 "
                      "SpinPause iterations, then block",
            **raw, **fit}


def measure_styles(styles: tuple[str, ...], **kwargs: Any) -> dict[str, Any]:
    """``measure`` for each style: ``{"styles": {style: measurement}}``."""
    return {"schema": SCHEMA, "styles": {s: measure(s, **kwargs) for s in styles}}


def load(path: Path) -> dict[str, Any]:
    """A file ``measure_styles`` wrote; ValueError for anything else."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read spin window file {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or \
            not isinstance(doc.get("styles"), dict):
        raise ValueError(f"{path} is not a spin window file (schema {SCHEMA})")
    return doc


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        style, threads, repeats, gaps = argv[1:5]
        out = gap_series(style, int(threads), tuple(float(g) for g in gaps.split(",")),
                         int(repeats))
        sys.stdout.write(json.dumps(out))
        return 0
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scaler.engines.ort_spin",
                                     description="measure ONNX Runtime's spin window here")
    parser.add_argument("--styles", default="defaults,model-zoo,tuned")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        doc = measure_styles(tuple(args.styles.split(",")), repeats=args.repeats)
    except (EngineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(doc, indent=1)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    for style, m in doc["styles"].items():
        lo, hi = m["window_range_ms"]
        print(f"{style:<10} spin CPU per pool thread {m['spin_cpu_ms']:.1f} ms "
              f"[{m['spin_cpu_range_ms'][0]:.1f}, {m['spin_cpu_range_ms'][1]:.1f}], window "
              f"{m['window_ms']:.1f} ms [{lo:.1f}, {hi:.1f}] over {m['repeats']} repeats"
              + (" (still growing at the longest gap: at least)" if m["censored"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
