"""``python -m scaler.bench --out DIR [--quick]``: the tool's own benchmarks (``make bench``).

1. harness overhead (timed loop against a bare loop in one pinned process, per engine; the
   null engine through the coordinator), 2. peak fp32/bf16/int8 per core and the efficiency
   of the best layout of every engine x precision against it, 3. the anchor: ``scaler``
   against OpenVINO's ``benchmark_app`` on the same IR, and ``anchor_ort``: against a bare
   ``InferenceSession.run`` loop on the same ONNX file, 4. start-up to the first timed
   query (cold and warm converted-model cache, the default engine, the harness-only one)
   and ``scaler --help``, 5. the simulator's speed if its benchmark exists, 6. the
   simulator's held-out error on committed real runs. Each section waits for a quiet
   machine first, records how busy the machine was while it ran, and is saved as soon as it
   ends; a failed section is reported and the others still run. Exit status 1 if any
   section failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaler.bench import report
from scaler.bench.config import SECTIONS, Config, config
from scaler.bench.machine import CpuMeter, loadavg, wait_until_quiet

NOTES = [
    "harness: one pinned child per engine alternates equal time slices of a bare "
    "`engine.infer` loop, the worker's `timed_loop` (progress messages to /dev/null) and a "
    "second bare loop (control), rotating the order every round; overhead = 1 - "
    "median(timed/bare throughput); noise = median |control/bare - 1|; an overhead above "
    "target but within the noise is 'unresolved'.",
    "coordinator: `run_group` with one pinned null worker on the local target, default "
    "--max-queries; µs/query = 1 / the throughput computed from its samples.",
    "server: `serving.serve_group` with N pinned null instances (oversubscribed past the "
    "cores); ceiling = highest offered rate whose generator lag p99 stays within its limit "
    "with every request served (doubling, then bisection); harness p50/p99 = completion "
    "minus scheduled arrival at 10% of the ceiling (`python -m scaler.bench.server`).",
    "peak: numba @intrinsic kernels of 12 independent zmm accumulators (fp32 FMA, bf16 "
    "vdpbf16ps, int8 vpdpbusd), one pinned child per core (alone, then all together); "
    "numpy's sgemm is not a peak.",
    "efficiency: each layout is a pinned group run by the tool (Session.group); GFLOP/s = "
    "images/s x 8.2 (ResNet50 224x224); int8 counts integer ops the same way; share of peak "
    "= GFLOP/s over the measured peak of the same precision x cores (fp32 FMA, bf16 "
    "vdpbf16ps, int8 vpdpbusd).",
    "anchor: per round one `scaler throughput --engine openvino --placement pinned` child "
    "and one `benchmark_app -hint none -nstreams 1 -nthreads N -pin NO -nireq 1 "
    "-infer_precision P -shape [B,..]` child on the IR the scaler worker loaded, pinned to the "
    "same CPUs, order swapped every round; ratio = scaler / benchmark_app images/s, median "
    "of the paired rounds with their range (a sign-test interval for the median).",
    "anchor_ort: per round one `scaler throughput --engine onnxruntime --placement pinned` "
    "child and one bare `InferenceSession.run` loop child (python -m scaler.bench.ort_anchor) "
    "on the ONNX file and session options the scaler worker read back, pinned to the same "
    "CPUs, order swapped every round; ORT's wheel ships no perf tool.",
    "startup: from spawning `scaler latency` to the first timed query's start_ns (both "
    "CLOCK_MONOTONIC); cold = empty --cache-dir (conversion included), warm = same dir.",
    "conditions: load = 1-minute load average at the start; others = share of all CPUs used "
    "by processes other than the bench and its children while the figure was measured.",
]


@dataclasses.dataclass
class Context:
    cfg: Config
    out: Path
    cpus: list[int]  # the whole-machine partition (one instance, all cores)
    nodes: list[int]
    core_cpus: list[int]  # one CPU per physical core
    isa: tuple[str, ...]
    results: dict[str, Any]
    say: Callable[[str], None]
    waited_s: float = 0.0  # over the whole run, bounded by cfg.max_total_wait_s

    def settle(self, strict: bool = False) -> dict[str, Any] | None:
        """Wait for others to quieten; ``strict`` also wants a low load average (which
        counts the bench's own recent work, so it is asked for only before a section)."""
        budget = min(self.cfg.max_wait_s, self.cfg.max_total_wait_s - self.waited_s)
        if budget <= 0:
            return None
        max_load = self.cfg.max_load if strict else float("inf")
        seen = wait_until_quiet(max_load, self.cfg.max_foreign, budget, say=self.say)
        self.waited_s += seen["waited_s"]
        return seen


def metered(ctx: Context, what: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement after settling; attach machine conditions, or its error."""
    quiet = ctx.settle()
    try:
        with CpuMeter() as meter:
            data = what()
    except Exception as exc:  # one failed measurement must not cost the others
        return {"error": f"{type(exc).__name__}: {exc}", "quiet_check": quiet}
    return {**data, "machine": meter.result, "quiet_check": quiet}


def run_harness(ctx: Context) -> dict[str, Any]:
    from scaler.bench.harness import measure_coordinator_null, measure_overhead
    from scaler.engines.registry import get

    cfg, engines = ctx.cfg, []
    for engine, precision in cfg.overhead_engines:
        ctx.say(f"bench: harness overhead, {engine} {precision}")
        slice_s = cfg.slice_s if get(engine).infers else cfg.null_slice_s
        row = metered(ctx, lambda e=engine, p=precision, s=slice_s: measure_overhead(
            e, p, cfg.model, ctx.cpus, ctx.nodes, s, cfg.rounds))
        engines.append({"engine": engine, "precision": precision, "model": cfg.model,
                        "batch": 1, **row})
    ctx.say("bench: null engine through the coordinator")
    coordinator = metered(ctx, lambda: measure_coordinator_null(
        ctx.cpus, ctx.nodes, cfg.coordinator_repeats, cfg.coordinator_min_duration_s, 0.2))
    return {"engines": engines, "coordinator_null": coordinator}


def run_server(ctx: Context) -> dict[str, Any]:
    from scaler.bench.server import measure_server

    cfg = ctx.cfg
    ctx.say("bench: open-loop harness, null engine (ceiling, latency at 10% of it)")
    return metered(ctx, lambda: measure_server(cfg.server_instances, cfg.server_window_s,
                                               cfg.server_precision, cfg.server_max_requests,
                                               ctx.say))


def run_peak(ctx: Context) -> dict[str, Any]:
    from scaler.bench.peak import measure_peak

    ctx.say("bench: peak fp32 FMA per core")
    return measure_peak(ctx.core_cpus, ctx.cfg.peak_s, ctx.cfg.peak_reps, ctx.isa)


def run_matmul(ctx: Context) -> dict[str, Any]:
    from scaler.bench.matmul import measure_matmul
    from scaler.engines.registry import BF16_ISA

    precisions = ["fp32", *(["bf16"] if set(BF16_ISA) & set(ctx.isa) else []), "int8"]
    ctx.say(f"bench: a large matmul per precision on one core ({', '.join(precisions)})")
    size, seconds, reps = (256, 0.2, 2) if ctx.cfg.quick else (1024, 2.0, 3)
    return measure_matmul(ctx.core_cpus[0], precisions, size, seconds, reps)


def run_efficiency(ctx: Context) -> dict[str, Any]:
    from scaler.bench.efficiency import measure_precision, with_peak

    cfg = ctx.cfg
    peak = ctx.results["sections"].get("peak") or {}
    precisions = []
    for engine, precision in cfg.efficiency:
        reason = unusable(engine, precision, ctx.isa)
        if reason:
            ctx.say(f"bench: efficiency, {engine} {precision}: skipped ({reason})")
            precisions.append({"precision": precision, "engine": engine, "skipped": reason})
            continue
        ctx.say(f"bench: efficiency, {engine} {precision}")
        row = metered(ctx, lambda e=engine, p=precision: measure_precision(
            p, e, cfg.model, cfg.efficiency_batch, ctx.out / "runs", cfg.min_duration_s,
            cfg.min_queries, cfg.warmup_s))
        precisions.append(with_peak({"precision": precision, "engine": engine, **row}, peak))
    return {"peak_machine_gflops": peak.get("machine_gflops"), "precisions": precisions}


def unusable(engine: str, precision: str, isa: tuple[str, ...]) -> str | None:
    """Why this CPU cannot run ``engine`` at ``precision`` (the engine's own check), or
    None."""
    from scaler.engines import EngineError, EngineSpec, check_spec

    try:
        check_spec(EngineSpec(engine=engine, precision=precision), isa)
    except EngineError as exc:
        return str(exc)
    return None


def run_anchor(ctx: Context) -> dict[str, Any]:
    from scaler.bench.anchor import ENGINE, measure_anchor

    cfg, runs = ctx.cfg, []
    for precision in cfg.anchor_precisions:
        reason = unusable(ENGINE, precision, ctx.isa)
        for batch in cfg.anchor_batches:
            if reason:
                runs.append({"precision": precision, "batch": batch, "skipped": reason})
                continue
            ctx.say(f"bench: anchor, {ENGINE} {precision} batch {batch} against benchmark_app")
            row = metered(ctx, lambda p=precision, b=batch: measure_anchor(
                p, cfg.model, b, ctx.cpus, cfg.anchor_rounds, cfg.anchor_s, cfg.warmup_s,
                ctx.out))
            runs.append({"precision": precision, "batch": batch, **row})
    return {"engine": ENGINE, "runs": runs}


def run_anchor_ort(ctx: Context) -> dict[str, Any]:
    from scaler.bench.ort_anchor import ENGINE, TOOL, measure_anchor

    cfg, runs = ctx.cfg, []
    for precision in cfg.anchor_ort_precisions:
        reason = unusable(ENGINE, precision, ctx.isa)
        for batch in cfg.anchor_batches:
            if reason:
                runs.append({"precision": precision, "batch": batch, "skipped": reason})
                continue
            ctx.say(f"bench: anchor, {ENGINE} {precision} batch {batch} against a {TOOL}")
            row = metered(ctx, lambda p=precision, b=batch: measure_anchor(
                p, cfg.model, b, ctx.cpus, cfg.anchor_rounds, cfg.anchor_s, cfg.warmup_s,
                ctx.out))
            runs.append({"precision": precision, "batch": batch, **row})
    return {"engine": ENGINE, "tool": TOOL, "runs": runs}


def run_startup(ctx: Context) -> dict[str, Any]:
    from scaler.bench.startup import measure_startup

    engine, precision = ctx.cfg.cache_run
    ctx.say(f"bench: start-up ({engine} {precision} cold and warm cache, then the others)")
    runs = [(e, p, ctx.cfg.model) for e, p in ctx.cfg.startup_runs]
    return measure_startup(runs, (engine, precision, ctx.cfg.model), ctx.out)


def run_help(ctx: Context) -> dict[str, Any]:
    from scaler.bench.startup import measure_help

    ctx.say("bench: scaler --help")
    return measure_help(ctx.cfg.help_reps)


def run_simulator(ctx: Context) -> dict[str, Any]:
    from scaler.bench.simulator import simulator_bench

    ctx.say("bench: simulator speed (scaler.simulate.bench)")
    return simulator_bench()


def run_validation(ctx: Context) -> dict[str, Any]:
    from scaler.bench.validation import validation_bench

    ctx.say("bench: held-out error of simulate --validate on the committed real runs")
    return validation_bench(queries=20_000 if ctx.cfg.quick else 50_000)


def run_speedprobe(ctx: Context) -> dict[str, Any]:
    from scaler.bench.probe import probe_bench

    ctx.say("bench: the speed probe's cost per window edge")
    return probe_bench()


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "harness": run_harness, "server": run_server, "peak": run_peak, "matmul": run_matmul,
    "efficiency": run_efficiency,
    "anchor": run_anchor, "anchor_ort": run_anchor_ort, "startup": run_startup,
    "help": run_help, "simulator": run_simulator,
    "validation": run_validation, "speedprobe": run_speedprobe,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scaler.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/bench"),
                   help="folder for bench.json, bench.md and the run folders")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and short windows: a smoke run, not figures to quote")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    p.add_argument("--max-wait", type=float, default=None,
                   help="seconds to wait for a quiet machine before each measurement "
                        "(default 300, at most 1800 in all; 0 with --quick)")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown or not only:
        p.error(f"unknown section(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in only]
    return args


def main(argv: list[str] | None = None) -> int:
    from affinity import plan, read_topology
    from scaler import results as run_results
    from scaler import runfolders

    args = parse_args(argv)
    cfg = config(args.quick, args.max_wait)
    out = runfolders.check_output_dir(args.out)
    topology = read_topology()
    whole = plan(topology, 1).partitions[0]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "schema": "scaler-bench/1",
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": ["python", "-m", "scaler.bench",
                    *(sys.argv[1:] if argv is None else argv)],
        "quick": cfg.quick,
        "host": {**run_results.host_info(), "cpu_model": _cpu_model(),
                 "cores": len(topology.usable_cores), "cpus": list(topology.usable_cpus),
                 "isa": list(topology.isa)},
        "config": dataclasses.asdict(cfg),
        "notes": NOTES,
        "sections": {},
        "errors": {},
    }
    ctx = Context(cfg, out, list(whole.cpus), list(whole.nodes),
                  [core.cpus[0] for core in topology.usable_cores], topology.isa, results, say)
    began = time.monotonic()
    say(f"bench: load average {loadavg()[0]:.2f}; writing {out / 'bench.json'}")
    for name in args.sections:
        quiet = ctx.settle(strict=True)
        try:
            with CpuMeter() as meter:
                data = RUNNERS[name](ctx)
        except Exception as exc:  # reported in the table; the other sections still run
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
        else:
            results["sections"][name] = {**data, "machine": meter.result, "quiet_check": quiet}
        report.save(out, results)
    results["wall_s"] = round(time.monotonic() - began, 1)
    report.save(out, results)
    print("\n".join(report.table_lines(results)))
    return 1 if results["errors"] else 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


if __name__ == "__main__":
    sys.exit(main())
