"""What a bench run measures and for how long: the full run (``make bench``) or ``--quick``.

The full run uses ResNet50 (the study's model, whose 8.2 GFLOP per image turns images/s into
GFLOP/s) and windows long enough for medians that hold still to a fraction of a percent; the
efficiency windows are 20 s because a batch-32 fp32 query takes 1.3-2.5 s here, and the common
window of two instances counts whole queries only. The
quick run is a smoke test of the machinery on the tiny model in seconds; its figures are not
meant to be quoted.

Which engines run comes from the engine registry, so a new engine joins the bench by
registering: the harness overhead of every engine (at the precision it is the default for,
else its first), the efficiency of every inferring engine at every precision it implements
(a pair the CPU cannot run is reported as skipped), and start-up of the engine that converts
for int8 (cold and warm cache).
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("harness", "server", "peak", "matmul", "efficiency", "anchor", "anchor_ort",
            "startup", "help", "simulator", "validation", "speedprobe")


@dataclass(frozen=True)
class Config:
    quick: bool
    model: str  # for the real engines everywhere
    # 1. harness overhead: (engine, precision) at batch 1 in one pinned child each
    overhead_engines: tuple[tuple[str, str], ...]
    slice_s: float  # length of each bare / timed slice
    null_slice_s: float
    rounds: int
    coordinator_repeats: int
    coordinator_min_duration_s: float
    # 1b. the open-loop harness (scaler.bench.server): ceiling and latency at 10% of it
    server_instances: tuple[int, ...]
    server_window_s: float  # seconds of arrivals per probe
    server_precision: float  # the ceiling's bisection stops this close
    server_max_requests: int
    # 2. peak and efficiency
    peak_s: float
    peak_reps: int
    efficiency: tuple[tuple[str, str], ...]  # (engine, precision)
    efficiency_batch: int
    min_duration_s: float
    min_queries: int
    warmup_s: float
    # 3. the benchmark_app anchor: precisions x batches, interleaved rounds of both tools
    anchor_precisions: tuple[str, ...]
    anchor_batches: tuple[int, ...]
    anchor_rounds: int
    anchor_s: float  # measured seconds of each side per round
    # 3b. the onnxruntime anchor (a bare InferenceSession.run loop), same batches and rounds
    anchor_ort_precisions: tuple[str, ...]
    # 4. start-up
    cache_run: tuple[str, str]  # (engine, precision) timed with a cold then a warm cache
    startup_runs: tuple[tuple[str, str], ...]  # besides the cold and warm cache runs
    help_reps: int
    # waiting for a quiet machine before each section
    max_load: float
    max_foreign: float
    max_wait_s: float  # before each measurement
    max_total_wait_s: float  # over the whole run: past it, measure whatever the load


def overhead_engines() -> tuple[tuple[str, str], ...]:
    """Every registered engine once, at the precision it is the default for, else its first;
    the harness-only engines first."""
    from scaler.engines.registry import engines

    pairs = [(e.name, (e.default_for or e.precisions)[0]) for e in engines().values()]
    return tuple(sorted(pairs, key=lambda p: _infers(p[0])))


def efficiency_pairs() -> tuple[tuple[str, str], ...]:
    """Every inferring engine at every precision it implements, precision by precision."""
    from scaler.engines.base import PRECISIONS
    from scaler.engines.registry import engines

    return tuple((e.name, p) for p in PRECISIONS for e in engines().values()
                 if e.infers and p in e.precisions)


def _infers(engine: str) -> bool:
    from scaler.engines.registry import get

    return get(engine).infers


def config(quick: bool, max_wait_s: float | None = None) -> Config:
    from scaler.bench.anchor import ENGINE as ANCHOR_ENGINE
    from scaler.bench.ort_anchor import ENGINE as ORT_ANCHOR_ENGINE
    from scaler.engines.registry import default_engine, engines, get

    harness_only = next((e.name for e in engines().values() if not e.infers), None)
    cache_run = (default_engine("int8"), "int8")
    startup = tuple(p for p in ((default_engine("fp32"), "fp32"),
                                (harness_only, "fp32")) if p[0] and p != cache_run)
    common = dict(overhead_engines=overhead_engines(), efficiency=efficiency_pairs(),
                  anchor_precisions=get(ANCHOR_ENGINE).precisions,
                  anchor_ort_precisions=get(ORT_ANCHOR_ENGINE).precisions, cache_run=cache_run,
                  max_load=1.0, max_foreign=0.15)
    if quick:
        return Config(quick=True, model="tiny", slice_s=0.3, null_slice_s=0.2, rounds=3,
                      coordinator_repeats=2, coordinator_min_duration_s=0.5,
                      server_instances=(1,), server_window_s=0.5, server_precision=0.25,
                      server_max_requests=50_000, peak_s=0.6,
                      peak_reps=3, efficiency_batch=8, min_duration_s=1.0, min_queries=2,
                      warmup_s=0.2, anchor_batches=(1, 8), anchor_rounds=2, anchor_s=1.0,
                      startup_runs=startup[-1:], help_reps=3,
                      max_wait_s=0.0 if max_wait_s is None else max_wait_s,
                      max_total_wait_s=1200.0, **common)
    return Config(quick=False, model="resnet50", slice_s=2.0, null_slice_s=1.0, rounds=12,
                  coordinator_repeats=5, coordinator_min_duration_s=2.0,
                  server_instances=(1, 2, 4), server_window_s=2.0, server_precision=0.1,
                  server_max_requests=400_000, peak_s=3.0,
                  peak_reps=5, efficiency_batch=32, min_duration_s=20.0, min_queries=4,
                  warmup_s=2.0, anchor_batches=(1, 32), anchor_rounds=5, anchor_s=10.0,
                  startup_runs=startup, help_reps=5,
                  max_wait_s=300.0 if max_wait_s is None else max_wait_s,
                  max_total_wait_s=1800.0, **common)
