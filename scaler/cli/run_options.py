"""The options of the scenario commands (``scaler.cli.run``; ``suite`` shares them) and the
run rules' defaults per scenario that their help shows. The placements' own options
(``--vm-memory``, ...) are declared by the placements (``scaler.cli.placement_options``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scaler import placements
from scaler.engines import registry as engines

QUICK = {"min_duration_s": 2.0, "min_queries": 10, "warmup_s": 0.5}

Engine = Annotated[str | None, typer.Option("--engine", help=engines.help_text())]
Precision = Annotated[str, typer.Option("--precision", help="fp32, bf16 or int8")]
def _model_help() -> str:
    from scaler.engines.models import BUILTIN_SHAPES

    files = ["SavedModel folder", ".keras",
             *(s for e in engines.engines().values() for s in e.native_suffixes)]
    return f"{', '.join(BUILTIN_SHAPES)}, or a path: {' / '.join(files)}"


Model = Annotated[str, typer.Option("--model", help=_model_help())]
# per-scenario defaults of the run rules (LoadGen-like): (min_duration_s, min_queries, warmup_s)
RULES = {"latency": (10.0, 1024, 2.0), "throughput": (10.0, 2, 0.0), "scaling": (10.0, 200, 2.0),
         "multistream": (5.0, 32, 1.0), "server": (10.0, 100, 1.0)}


def _rule_help(what: str, index: int, unit: str) -> str:
    defaults = ", ".join(f"{k} {v[index]:g}{unit}" for k, v in RULES.items())
    pooled = "; latency and scaling: over all repeats" if index == 1 else ""
    return f"{what} (default: {defaults}{pooled}; --quick: {QUICK_HELP[index]})"


QUICK_HELP = ("2 s", "10", "0.5 s")
POOLED = ("latency", "scaling")  # scenarios whose default query count is split over repeats
MinDuration = Annotated[float | None, typer.Option(
    "--min-duration", help=_rule_help("seconds each measurement lasts at least", 0, " s"))]
MinQueries = Annotated[int | None, typer.Option(
    "--min-queries", help=_rule_help("queries each measurement completes at least (over all "
                                     "instances; multistream probes take at least what early "
                                     "stopping needs)", 1, ""))]
Warmup = Annotated[float | None, typer.Option(
    "--warmup", help=_rule_help("seconds of warm-up per worker, not counted", 2, " s"))]
Out = Annotated[Path, typer.Option("--out", help="folder to write run folders into")]
Json = Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")]
PlacementOpt = Annotated[str, typer.Option(
    "--placement", help=f"{placements.help_text()} (comma-separated for scaling)")]
Instances = Annotated[str, typer.Option("--instances", help="instance counts, e.g. 1-8 or 1,2,4")]
Batch = Annotated[int, typer.Option("--batch", help="images per query")]
Smt = Annotated[bool, typer.Option("--smt", help="give pinned instances both SMT siblings")]
CoresPerInstance = Annotated[int | None, typer.Option(
    "--cores-per-instance", metavar="K", help="fixed-size instances: K physical cores each (2K "
    "CPUs with --smt) for pinned and vm, placed NUMA-locally, the rest of the machine idle; "
    "shared instances keep every CPU (default: the machine shared out evenly)")]
Oversubscribe = Annotated[bool, typer.Option(
    "--oversubscribe", help="with --cores-per-instance: let N x K exceed the usable cores "
    "(cores shared round-robin) instead of refusing")]
Bound = Annotated[float, typer.Option("--latency-bound-ms", help="batch latency bound (ms)")]
StatOpt = Annotated[str, typer.Option("--stat", help="latency statistic for the bound: "
                                                     "p99, p90, p50 or mean")]
MaxBatch = Annotated[int, typer.Option("--max-batch", help="largest batch to try")]
CacheDir = Annotated[str | None, typer.Option(
    "--cache-dir", help="converted-model cache folder")]
ReadyTimeout = Annotated[float, typer.Option(
    "--ready-timeout", help="seconds a worker may take to load and warm up")]
Hosts = Annotated[str | None, typer.Option(
    "--hosts", help="TOML file of machines to run the workers on over SSH (see README)")]
FleetOpt = Annotated[str | None, typer.Option(
    "--fleet", help="machines to run the workers on: ssh:FILE (as --hosts FILE) or "
    "slurm[:PARTITION[:NODES]] (job steps of one Slurm allocation; see README)")]

Repeat = Annotated[int, typer.Option(
    "--repeat", help="measure every group this many times, each in fresh workers, "
    "interleaved; figures get a 95% interval")]
Remeasure = Annotated[int, typer.Option(
    "--remeasure", help="measure a repeat whose speed probe ran >10% below the run's idle speed "
    "(contended) again, up to this many times; every attempt is kept")]
NoiseLimit = Annotated[float, typer.Option(
    "--noise-limit", help="share of the measured CPUs other processes may use before a group "
    "is marked noisy (0..1)")]
QuietWait = Annotated[float, typer.Option(
    "--quiet-wait", help="seconds to wait before each group for others to use less than the "
    "noise limit of its CPUs (0: do not wait)")]
StallTimeout = Annotated[float, typer.Option(
    "--stall-timeout", help="seconds a measuring worker may stay silent before it counts as "
    "stalled and is killed (at least 10 queries' time)")]
LockWait = Annotated[float, typer.Option(
    "--lock-wait", help="seconds to wait for another run measuring on the same CPUs "
    "(default: refuse at once)")]
NoLock = Annotated[bool, typer.Option(
    "--no-lock", help="measure even while another run measures on the same CPUs (both runs "
    "record the overlap)")]
