"""What the harness itself costs: the worker's timed loop against a bare loop, and the null
engine through the whole coordinator.

Overhead is measured inside ONE pinned child process (``python -m scaler.bench.harness``),
loaded exactly as a worker loads (``scaler.worker.load.load``: pin with ``affinity.bind``,
load the engine, warm up). It then alternates, for equal time slices, a bare loop
``for _ in range(n): engine.infer(x)``, the worker's real ``timed_loop`` (progress messages
included, written through the worker's ``Channel`` to /dev/null) and a second bare loop as a
control. Alternating, and rotating the order every round, spreads clock drift, thermal state
and the neighbours' load evenly over all three; the overhead is one minus the median of the
per-round timed/bare throughput ratios, and the bare/bare control says how large a
difference the machine's own noise makes (an overhead below it is not resolved).
Measuring two processes against each other instead would compare two placements, two heaps
and two moments, which differ by more than the effect measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

MARK = "@bench-harness "
WORKER_PROGRESS_S = 0.25  # the worker's default --progress-s
UNCAPPED = 1 << 40  # max_queries for the timed slices: a null engine would hit the default


def alternate(engine: Any, inputs: Any, channel: Any, slice_s: float, rounds: int,
              progress_s: float = WORKER_PROGRESS_S) -> list[dict[str, Any]]:
    """Per round: queries and seconds of three equal slices: a bare loop, the worker's
    ``timed_loop``, and a second bare loop (the control: bare against bare shows how much
    two identical slices differ here, the floor under any overhead this can resolve). The
    order rotates every round so no kind always runs first or last."""
    from scaler.worker.loop import timed_loop

    infer = engine.infer
    clock = time.monotonic_ns
    n = _calibrate(infer, inputs, slice_s)
    slice_ns = int(slice_s * 1e9)
    kinds = ("bare", "timed", "control")
    out = []
    for r in range(rounds):
        order = kinds[r % 3:] + kinds[:r % 3]
        row: dict[str, Any] = {"round": r, "order": list(order)}
        for kind in order:
            if kind != "timed":
                t0 = clock()
                for _ in range(n):
                    infer(inputs)
                t1 = clock()
                row.update({f"{kind}_queries": n, f"{kind}_s": (t1 - t0) / 1e9})
                continue
            t0 = clock()
            rec = timed_loop(engine, inputs, threading.Event(), channel, progress_s,
                             UNCAPPED, until_ns=t0 + slice_ns)
            t1 = clock()
            starts, ends = rec.trimmed()
            if not rec.count or starts[0] < t0 or ends[-1] > t1:
                raise RuntimeError("timed_loop samples fall outside the slice it ran in")
            row.update(timed_queries=rec.count, timed_s=(t1 - t0) / 1e9,
                       timed_recorded_s=(ends[-1] - starts[0]) / 1e9)
        for kind in kinds:
            row[f"{kind}_qps"] = row[f"{kind}_queries"] / row[f"{kind}_s"]
        row["ratio"] = row["timed_qps"] / row["bare_qps"]
        row["control_ratio"] = row["control_qps"] / row["bare_qps"]
        out.append(row)
        n = max(1, round(slice_s * row["bare_qps"]))  # keep the slices equal in time
    return out


def _calibrate(infer: Any, inputs: Any, slice_s: float) -> int:
    """Queries that fill about ``slice_s`` in a bare loop (doubling until 1/10 of it)."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            infer(inputs)
        spent = time.perf_counter() - t0
        if spent >= slice_s / 10:
            return max(1, round(n * slice_s / spent))
        n *= 2


def summarize_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median timed/bare ratio -> overhead %; the bare/bare control's spread -> noise floor;
    and the extra time per query the timed loop adds."""
    ratios = [r["ratio"] for r in rounds]
    controls = [r["control_ratio"] for r in rounds]
    extra_us = [(1 / r["timed_qps"] - 1 / r["bare_qps"]) * 1e6 for r in rounds]
    median_ratio = statistics.median(ratios)

    def pooled(kind: str) -> float:
        return sum(r[f"{kind}_queries"] for r in rounds) / sum(r[f"{kind}_s"] for r in rounds)

    return {
        "rounds": len(rounds),
        "median_ratio": median_ratio,
        "overhead_pct": (1 - median_ratio) * 100,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "pooled_overhead_pct": (1 - pooled("timed") / pooled("bare")) * 100,
        "control_median_ratio": statistics.median(controls),
        "control_min": min(controls),
        "control_max": max(controls),
        # how far a bare slice typically lands from another bare slice here, in %
        "noise_pct": statistics.median(abs(c - 1) for c in controls) * 100,
        "bare_us_per_query": statistics.median(1e6 / r["bare_qps"] for r in rounds),
        "timed_us_per_query": statistics.median(1e6 / r["timed_qps"] for r in rounds),
        "extra_us_per_query": statistics.median(extra_us),
    }


def measure_overhead(engine: str, precision: str, model: str, cpus: list[int],
                     nodes: list[int], slice_s: float, rounds: int, batch: int = 1,
                     warmup_s: float = 1.0, cache_dir: str | None = None,
                     timeout_s: float = 1800) -> dict[str, Any]:
    """Run the overhead child for one engine and summarize its rounds."""
    from scaler.worker.spec import WorkerSpec

    spec = WorkerSpec(engine=engine, precision=precision, model=model, batch=batch,
                      cpus=tuple(cpus), nodes=tuple(nodes), threads=len(cpus),
                      warmup_s=warmup_s, cache_dir=cache_dir)
    argv = [sys.executable, "-m", "scaler.bench.harness", "--slice-s", str(slice_s),
            "--rounds", str(rounds), *spec.argv()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"overhead child for {engine} {precision} failed: {tail[0]}")
    raw = json.loads(lines[-1][len(MARK):])
    return {"engine": engine, "precision": precision, "model": model, "batch": batch,
            "cpus": cpus, "slice_s": slice_s, **summarize_rounds(raw["rounds"]),
            "per_round": raw["rounds"], "worker": raw["worker"]}


def measure_coordinator_null(cpus: list[int], nodes: list[int], repeats: int,
                             min_duration_s: float, warmup_s: float) -> dict[str, Any]:
    """The null engine through ``run_group`` on the local target, ``repeats`` groups of one
    instance: µs per query = 1 / the throughput the tool computes from the samples.

    The worker runs with its default ``--max-queries`` (250 000), as a user's run does; a
    null worker halts at the window's minimum duration (the stop rule) or at that cap,
    whichever comes first, and the coordinator then stops the group.
    """
    import uvloop

    groups = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for _ in range(repeats):
            groups.append(runner.run(_null_group(cpus, nodes, min_duration_s, warmup_s)))
    us = [g["us_per_query"] for g in groups]
    return {"method": "run_group, 1 null instance, local target, pinned; "
                      "stats.throughput_ips over the samples",
            "cpus": cpus, "repeats": repeats, "us_per_query": statistics.median(us),
            "us_per_query_all": us, "groups": groups}


async def _null_group(cpus: list[int], nodes: list[int], min_duration_s: float,
                      warmup_s: float) -> dict[str, Any]:
    import numpy as np

    from scaler import stats
    from scaler.coordinator import RunRules, WorkerRequest, run_group
    from scaler.targets.local import LocalTarget
    from scaler.worker.spec import WorkerSpec

    spec = WorkerSpec(engine="null", cpus=tuple(cpus), nodes=tuple(nodes), threads=len(cpus),
                      warmup_s=warmup_s)
    request = WorkerRequest(0, spec, {"cpus": list(cpus), "nodes": list(nodes)})
    rules = RunRules(min_duration_s=min_duration_s, min_queries=100, warmup_s=warmup_s)
    outcome = await run_group([request], rules, LocalTarget())
    inst = outcome.instances[0]
    if not outcome.complete or inst.start_ns is None:
        raise RuntimeError(f"null group failed: {'; '.join(outcome.errors) or 'interrupted'}")
    starts = np.frombuffer(inst.start_ns, dtype=np.int64)
    ends = np.frombuffer(inst.end_ns, dtype=np.int64)
    ips, how = stats.throughput_ips([starts], [ends], 1, shared_clock=True)
    return {"queries": int(starts.size), "throughput_qps": ips, "us_per_query": 1e6 / ips,
            "throughput": how, "wall_s": round(outcome.wall_s, 3)}


def child_main(argv: list[str] | None = None) -> int:
    """The pinned child: the worker's own argument parsing and load, then ``alternate``."""
    from scaler.worker.channel import Channel
    from scaler.worker.load import load
    from scaler.worker.main import parse_args

    p = argparse.ArgumentParser(prog="python -m scaler.bench.harness", add_help=False)
    p.add_argument("--slice-s", type=float, required=True)
    p.add_argument("--rounds", type=int, required=True)
    mine, worker_argv = p.parse_known_args(argv)
    spec, _ = parse_args(worker_argv)
    engine, inputs, report = load(spec)
    channel = Channel(open(os.devnull, "wb", buffering=0))  # real messages, sent nowhere
    rounds = alternate(engine, inputs, channel, mine.slice_s, mine.rounds)
    engine.close()
    keep = ("binding", "threads", "engine", "load_s", "warmup_queries")
    print(MARK + json.dumps({"rounds": rounds, "worker": {k: report[k] for k in keep}}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
