"""The noise meter with real processes: a busy loop on a measured CPU is seen as others' CPU
time, a quiet window is not. The measured worker is the test plug-in's ``sleepy`` engine,
which sleeps through its queries, so the only CPU time on the measured CPU is the busy loop's
(and whatever else runs on this machine: the quiet case is skipped on a busy machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import uvloop

from scaler import noise
from scaler.coordinator import RunRules, WorkerRequest, run_group
from scaler.targets.local import LocalTarget
from scaler.worker.spec import WorkerSpec
from tests.scaler.helpers import run_async
from tests.scaler.test_plugins import PLUGIN

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

RULES = RunRules(min_duration_s=2.0, min_queries=10, warmup_s=0.1, ready_timeout_s=60)
CPU = (0,)


def measure(cpus=CPU):
    target = LocalTarget(env={**os.environ, **PLUGIN})
    request = WorkerRequest(0, WorkerSpec(engine="sleepy", model="tiny", cpus=cpus, threads=1,
                                          warmup_s=0.1), {"cpus": list(cpus), "nodes": [0]})
    probe = noise.WindowProbe(cpus)
    outcome = run_async(uvloop.new_event_loop, run_group([request], RULES, target, probe=probe))
    assert outcome.complete, outcome.errors
    return outcome.noise


def busy_loop(cpu):
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def test_a_busy_loop_on_the_measured_cpu_makes_the_group_noisy():
    loop = busy_loop(CPU[0])
    try:
        seen = measure()
    finally:
        loop.kill()
        loop.wait(timeout=10)
    assert seen["noisy"] is True
    assert seen["others_cpu_share"] > 0.6  # the loop has the CPU nearly to itself
    assert seen["workers_cpu_share"] < 0.2  # the sleeping worker hardly runs
    # the meter's window is the coordinator's reading around the workers' 2 s (they begin
    # together a moment after it starts and stop at their own rule): a few ms either way
    assert seen["window_s"] >= RULES.min_duration_s - 0.05 and seen["cpus"] == [0]


def test_a_quiet_window_is_not_noisy(quiet_beside):
    # the tests beside the serial group held to 1% of a CPU meanwhile (tests/priority.py);
    # waits at most 5 s for a quiet CPU (other tenants of the host may still keep it busy)
    ambient = run_async(uvloop.new_event_loop, noise.wait_quiet(CPU, 0.02, 5.0))
    if not ambient["quiet"]:
        pytest.skip(f"this machine is busy (others use {ambient['others_cpu_share']:.0%} of "
                    "CPU 0): a quiet window cannot be made here now")
    seen = measure()
    assert seen["noisy"] is False, seen
    assert seen["others_cpu_share"] <= 0.05
