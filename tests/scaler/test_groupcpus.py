"""One plan of a group for the lock, the session and the simulator: a run locks exactly the
CPUs its groups measure on, and a simulated layout sits where the measured group would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler import lock, placements
from scaler.errors import UsageError
from scaler.groupcpus import group_cpus, measured_cpus, plan_group
from scaler.settings import Settings
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine
from tests.scaler.helpers import scaler_cmd

XEON = parse_machine("2s4c2t")  # 16 CPUs, siblings n/n+8


@pytest.mark.parametrize("placement, n, smt, k", [
    ("pinned", 1, False, 1), ("pinned", 2, True, 2), ("pinned", 3, False, None),
    ("shared", 2, False, None), ("vm", 2, False, 3), ("vm", 1, True, None)])
def test_the_lock_the_session_and_the_simulator_plan_a_group_alike(placement, n, smt, k):
    settings = Settings(placements=(placement,), instances=(n,), smt=smt, cores_per_instance=k)
    plan = plan_group(placements.get(placement), XEON, n, smt=smt, cores_per_instance=k)
    cpus = measured_cpus(plan, XEON)
    assert cpus == group_cpus(placements.get(placement), XEON, n, smt=smt,
                              cores_per_instance=k)
    assert lock.run_cpus(settings, XEON) == frozenset(cpus)
    layout = plan_layout(XEON, placement, n, smt=smt, cores_per_instance=k)
    assert [p["cpus"] for p in layout.partitions] == [
        list(i.cpus) if i.cpus is not None else list(XEON.usable_cpus) for i in plan.instances]
    if k:  # fixed-size instances: k cores each (2k CPUs with --smt), the rest left idle
        assert len(cpus) == n * k * (2 if smt else 1) < len(XEON.usable_cpus)


def test_a_group_that_needs_more_cores_than_the_machine_is_refused_alike():
    pinned = placements.get("pinned")
    with pytest.raises(UsageError, match="--oversubscribe"):
        plan_group(pinned, XEON, 3, cores_per_instance=3)
    with pytest.raises(UsageError, match="--oversubscribe"):
        plan_layout(XEON, "pinned", 3, cores_per_instance=3)
    over = plan_group(pinned, XEON, 3, cores_per_instance=3, oversubscribe=True)
    assert over.layout["oversubscribed"]
    refused = Settings(placements=("pinned",), instances=(3,), cores_per_instance=3)
    assert lock.run_cpus(refused, XEON) == frozenset(XEON.usable_cpus)  # it says so later


@pytest.mark.serial  # measures and takes the lock (tests/conftest.py)
def test_a_run_locks_only_the_cpu_it_measures(tmp_path):
    done = scaler_cmd("scaling", "--placement", "pinned", "--cores-per-instance", "1",
                      "--instances", "1", "--engine", "null", "--model", "tiny",
                      "--min-queries", "10", "--warmup", "0.1", "--min-duration", "0.3",
                      "--out", str(tmp_path / "out"), "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((Path(json.loads(done.stdout)["run"]) / "run.json").read_text())
    (group,) = doc["groups"]
    (instance,) = group["per_instance"]
    measured = instance["partition"]["cpus"]
    assert len(measured) == 1  # one core, no --smt: one CPU
    assert instance["binding"]["cpus"] == measured  # read back from the worker
    assert doc["lock"]["mode"] == "locked"
    assert doc["lock"]["cpus"] == str(measured[0])  # the CPU it measured on, and only that
