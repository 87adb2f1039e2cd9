"""What a bench run measures and for how long: the full run (``make bench``) or ``--quick``.

The full run uses ResNet50 (the study's model, whose 8.2 GFLOP per image turns images/s into
GFLOP/s) and windows long enough for medians that hold still to a fraction of a percent; the
efficiency windows are 20 s because a batch-32 fp32 query takes 1.3-2.5 s here, and the common
window of two instances counts whole queries only. The
quick run is a smoke test of the machinery on the tiny model in seconds; its figures are not
meant to be quoted.
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("harness", "peak", "efficiency", "startup", "help", "simulator", "validation")


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
    # 2. peak and efficiency
    peak_s: float
    peak_reps: int
    efficiency: tuple[tuple[str, str], ...]  # (engine, precision)
    efficiency_batch: int
    min_duration_s: float
    min_queries: int
    warmup_s: float
    # 3. start-up
    startup_runs: tuple[tuple[str, str], ...]  # besides tflite int8 cold and warm
    help_reps: int
    # waiting for a quiet machine before each section
    max_load: float
    max_foreign: float
    max_wait_s: float  # before each measurement
    max_total_wait_s: float  # over the whole run: past it, measure whatever the load


def config(quick: bool, max_wait_s: float | None = None) -> Config:
    engines = (("null", "fp32"), ("tf", "fp32"), ("tflite", "int8"))
    precisions = (("tf", "fp32"), ("tf", "bf16"), ("tflite", "int8"))
    if quick:
        return Config(quick=True, model="tiny", overhead_engines=engines, slice_s=0.3,
                      null_slice_s=0.2, rounds=3, coordinator_repeats=2,
                      coordinator_min_duration_s=0.5, peak_s=0.6, peak_reps=3,
                      efficiency=precisions, efficiency_batch=8, min_duration_s=1.0,
                      min_queries=2, warmup_s=0.2, startup_runs=(("null", "fp32"),),
                      help_reps=3, max_load=1.0, max_foreign=0.15,
                      max_wait_s=0.0 if max_wait_s is None else max_wait_s,
                      max_total_wait_s=1200.0)
    return Config(quick=False, model="resnet50", overhead_engines=engines, slice_s=2.0,
                  null_slice_s=1.0, rounds=12, coordinator_repeats=5,
                  coordinator_min_duration_s=2.0, peak_s=3.0, peak_reps=5,
                  efficiency=precisions, efficiency_batch=32, min_duration_s=20.0,
                  min_queries=4, warmup_s=2.0,
                  startup_runs=(("tf", "fp32"), ("null", "fp32")), help_reps=5,
                  max_load=1.0, max_foreign=0.15,
                  max_wait_s=300.0 if max_wait_s is None else max_wait_s,
                  max_total_wait_s=1800.0)
