"""The scenario commands: latency, throughput, scaling, multistream and server.

Thin wrappers: options become ``Settings`` and run through ``scaler.cli.runner`` (which
``suite`` uses too); every placement's own options (``--vm-memory``, ``--accel``, a plug-in's)
are added from the placement registry (``scaler.cli.placement_options``). Heavy modules
(numpy, the coordinator, matplotlib) are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scaler.cli.common import IsaOpt, ThreadingOpt, errors_to_exit
from scaler.cli.fleet_options import SshParallel
from scaler.cli.placement_options import with_placement_options
from scaler.cli.run_options import (
    Batch,
    Bound,
    CacheDir,
    CoresPerInstance,
    Engine,
    FleetOpt,
    Hosts,
    Instances,
    Json,
    LockWait,
    MaxBatch,
    MinDuration,
    MinQueries,
    Model,
    NoiseLimit,
    NoLock,
    Out,
    Oversubscribe,
    PlacementOpt,
    Precision,
    QuietWait,
    ReadyTimeout,
    Remeasure,
    Repeat,
    Smt,
    StallTimeout,
    StatOpt,
    Warmup,
)
from scaler.cli.runner import command_options, run_scenarios, settings_for


def _one(scenario: str, given: dict[str, Any]) -> None:
    """Run one scenario from a command's parameters (its ``locals()``)."""
    run_scenarios([(scenario, settings_for(scenario, **command_options(given)))], given["out"],
                  given["json"], lock_wait=given["lock_wait"], no_lock=given["no_lock"])


@with_placement_options
def latency(engine: Engine = None, precision: Precision = "fp32", model: Model = "resnet50",
            placement: PlacementOpt = "pinned", repeat: Repeat = 1,
            remeasure: Remeasure = 1, min_duration: MinDuration = None,
            min_queries: MinQueries = None,
            warmup: Warmup = None, noise_limit: NoiseLimit = 0.05, quiet_wait: QuietWait = 0.0,
            cache_dir: CacheDir = None, ready_timeout: ReadyTimeout = 300.0,
            stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
            isa: IsaOpt = "native",
            hosts: Hosts = None, fleet: FleetOpt = None,
            ssh_parallel: SshParallel = 32,
            out: Out = Path("results"), json: Json = False,
            lock_wait: LockWait = 0.0, no_lock: NoLock = False,
            **placement_options: Any) -> None:
    """Batch-1 latency of one instance: mean, p50, p90, p99, p99.9 (ms)."""
    with errors_to_exit():
        _one("latency", locals())


@with_placement_options
def throughput(engine: Engine = None, precision: Precision = "fp32", model: Model = "resnet50",
               batch: Batch = 1024, placement: PlacementOpt = "pinned", repeat: Repeat = 1,
               remeasure: Remeasure = 1,
               min_duration: MinDuration = None, min_queries: MinQueries = None,
               warmup: Warmup = None, noise_limit: NoiseLimit = 0.05,
               quiet_wait: QuietWait = 0.0, cache_dir: CacheDir = None,
               ready_timeout: ReadyTimeout = 300.0,
               stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
               isa: IsaOpt = "native",
               hosts: Hosts = None, fleet: FleetOpt = None,
               ssh_parallel: SshParallel = 32,
               out: Out = Path("results"), json: Json = False,
               lock_wait: LockWait = 0.0, no_lock: NoLock = False,
            **placement_options: Any) -> None:
    """Large-batch throughput of one instance (images/s)."""
    with errors_to_exit():
        _one("throughput", locals())


@with_placement_options
def scaling(instances: Instances = "1-8", placement: PlacementOpt = "shared,pinned",
            engine: Engine = None, precision: Precision = "fp32", model: Model = "resnet50",
            smt: Smt = False, cores_per_instance: CoresPerInstance = None,
            oversubscribe: Oversubscribe = False, repeat: Repeat = 1,
            remeasure: Remeasure = 1, min_duration: MinDuration = None,
            min_queries: MinQueries = None, warmup: Warmup = None,
            noise_limit: NoiseLimit = 0.05, quiet_wait: QuietWait = 0.0,
            cache_dir: CacheDir = None, ready_timeout: ReadyTimeout = 300.0,
            stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
            isa: IsaOpt = "native",
            hosts: Hosts = None, fleet: FleetOpt = None,
            ssh_parallel: SshParallel = 32,
            out: Out = Path("results"), json: Json = False,
            lock_wait: LockWait = 0.0, no_lock: NoLock = False,
            **placement_options: Any) -> None:
    """1..N concurrent batch-1 instances per placement: aggregate images/s and latency."""
    with errors_to_exit():
        _one("scaling", locals())


@with_placement_options
def multistream(latency_bound_ms: Bound = 33.3, stat: StatOpt = "p99",
                instances: Instances = "1-8", max_batch: MaxBatch = 256,
                placement: PlacementOpt = "pinned", engine: Engine = None,
                precision: Precision = "fp32", model: Model = "resnet50", smt: Smt = False,
                cores_per_instance: CoresPerInstance = None,
                oversubscribe: Oversubscribe = False, repeat: Repeat = 1,
                remeasure: Remeasure = 1, min_duration: MinDuration = None,
                min_queries: MinQueries = None, warmup: Warmup = None,
                noise_limit: NoiseLimit = 0.05, quiet_wait: QuietWait = 0.0,
                cache_dir: CacheDir = None, ready_timeout: ReadyTimeout = 300.0,
                stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
                isa: IsaOpt = "native", hosts: Hosts = None, fleet: FleetOpt = None,
                ssh_parallel: SshParallel = 32, out: Out = Path("results"), json: Json = False,
                lock_wait: LockWait = 0.0, no_lock: NoLock = False,
            **placement_options: Any) -> None:
    """Largest batch (and its throughput) whose latency stays under a bound, per layout of
    each placement (e.g. --placement shared,pinned: bare metal against VM-like)."""
    with errors_to_exit():
        _one("multistream", locals())


@with_placement_options
def server(target_qps: Annotated[float | None, typer.Option(
               "--target-qps", help="requests per second over all instances (Poisson "
               "arrivals; default 10); with --find-peak, where the search starts (default: "
               "half the layout's closed-loop throughput, measured first)")] = None,
           find_peak: Annotated[bool, typer.Option(
               "--find-peak", help="search the highest rate whose latency meets the bound")]
           = False,
           latency_bound_ms: Annotated[float, typer.Option(
               "--latency-bound-ms", help="latency bound from arrival (ms)")] = 100.0,
           stat: StatOpt = "p99", instances: Instances = "1",
           placement: PlacementOpt = "shared,pinned", batch: Annotated[int, typer.Option(
               "--batch", help="requests per inference (a partial batch waits at most "
               "--batch-timeout-ms)")] = 1,
           max_batch: Annotated[int | None, typer.Option(
               "--max-batch", help="dynamic batching: up to this many queued requests per "
               "inference (default: --batch)")] = None,
           batch_timeout_ms: Annotated[float, typer.Option(
               "--batch-timeout-ms", help="longest a request waits for its batch to fill")]
           = 0.0,
           peak_precision: Annotated[float, typer.Option(
               "--peak-precision", help="--find-peak stops when the bracket is this narrow "
               "(relative)")] = 0.05,
           seed: Annotated[int, typer.Option("--seed", help="seed of the arrival schedule")]
           = 0,
           engine: Engine = None, precision: Precision = "fp32", model: Model = "resnet50",
           smt: Smt = False, repeat: Repeat = 1, remeasure: Remeasure = 1,
           min_duration: MinDuration = None, min_queries: MinQueries = None,
           warmup: Warmup = None,
           noise_limit: NoiseLimit = 0.05, quiet_wait: QuietWait = 0.0,
           cache_dir: CacheDir = None, ready_timeout: ReadyTimeout = 300.0,
           stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
           isa: IsaOpt = "native",
           hosts: Hosts = None, fleet: FleetOpt = None,
           ssh_parallel: SshParallel = 32,
           out: Out = Path("results"), json: Json = False, lock_wait: LockWait = 0.0,
           no_lock: NoLock = False, **placement_options: Any) -> None:
    """Open-loop serving (LoadGen's Server scenario): Poisson arrivals into one shared queue,
    latency from each request's scheduled arrival; --find-peak searches the highest rate
    each layout serves within the bound."""
    with errors_to_exit():
        opts = command_options(locals())
        opts["serve_max_batch"] = opts.pop("max_batch")
        run_scenarios([("server", settings_for("server", **opts))], out, json, lock_wait=lock_wait,
             no_lock=no_lock)
