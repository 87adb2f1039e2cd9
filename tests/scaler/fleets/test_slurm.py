"""The slurm fleet on a real one-node cluster (munged, slurmctld, slurmd on this machine):
topology and plan read through a job step, scaling runs whose every worker is a step bound
by Slurm, the read-back of both sides, refusals before any worker, and no job left behind
(also when the coordinator is killed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affinity import read_topology
from affinity.cpulist import format_cpulist, parse_cpulist
from tests.scaler.helpers import ROOT, scaler_cmd

SHORT = ["--min-duration", "0.5", "--min-queries", "10", "--warmup", "0", "--repeat", "1"]


def squeue(cluster, *args: str) -> list[str]:
    done = subprocess.run(["squeue", "-h", "-o", "%i %j %T", *args], env=cluster.env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def wait_no_jobs(cluster, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := squeue(cluster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def env_of(cluster) -> dict[str, str]:
    return {"SLURM_CONF": str(cluster.conf)}


def test_topology_through_a_job_step(slurm_cluster):
    done = scaler_cmd("topology", "--json", "--fleet", slurm_cluster.fleet,
                      env=env_of(slurm_cluster), timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    here = read_topology()
    assert doc["fleet"] == slurm_cluster.fleet and list(doc["machines"]) == [slurm_cluster.node]
    node = doc["machines"][slurm_cluster.node]
    # the step saw the whole node (not the one CPU a default step gets)
    assert node["usable_cpus"] == list(here.usable_cpus)
    assert node["sysfs_root"] == f"{slurm_cluster.node}:/sys"
    assert wait_no_jobs(slurm_cluster, 10) == []


def test_plan_shows_slurm_binding_per_partition(slurm_cluster):
    done = scaler_cmd("plan", "-n", "2", "--json", "--fleet", slurm_cluster.fleet,
                      env=env_of(slurm_cluster), timeout=120)
    assert done.returncode == 0, done.stderr
    parts = json.loads(done.stdout)["machines"][slurm_cluster.node]["partitions"]
    assert len(parts) == 2
    for part in parts:
        want = hex(sum(1 << c for c in part["cpus"]))
        assert part["step_options"][0] == f"--cpu-bind=verbose,mask_cpu:{want}"
    assert wait_no_jobs(slurm_cluster, 10) == []


def check_steps(doc: dict, cluster) -> list[dict]:
    """Every instance of every group ran as a step of the run's one job, and Slurm's binding,
    the plan and the worker's own affinity agree; returns the step records."""
    job = doc["slurm"]["job"]
    assert doc["slurm"]["nodes"] == [cluster.node] and job
    usable = list(read_topology().usable_cpus)
    steps, fresh = [], 0
    for group in doc["groups"]:
        assert group["status"] == "complete", group.get("errors")
        assert len({i["slurm"]["step"] for i in group["per_instance"]}) == group["instances"]
        fresh += sum(not i["reused"] for i in group["per_instance"])
        for inst in group["per_instance"]:
            s = inst["slurm"]
            assert s["job"] == job and s["step"].startswith(f"{job}.")
            planned = (inst["partition"] or {"cpus": usable})["cpus"]
            assert s["planned_cpus"] == format_cpulist(planned)
            assert s["slurm_cpu_bind"]["line"].startswith("cpu-bind=MASK")
            assert parse_cpulist(s["slurm_cpu_bind"]["list"]) == tuple(planned)
            assert parse_cpulist(s["worker_cpus"]) == tuple(planned)
            assert inst["binding"]["cpus"] == planned  # the worker's own read-back
            assert inst["binding"]["requested_cpus"] is None  # it did not pin itself
            if inst["partition"] and inst["partition"]["nodes"]:
                assert inst["binding"]["memory_policy"] == (
                    "bind:" + format_cpulist(inst["partition"]["nodes"]))
            steps.append(s)
    # every worker a step of its own; a warm worker reused by a later group keeps its step
    assert len({s["step"] for s in steps}) == fresh
    return steps


def run_doc(out: Path) -> dict:
    (run,) = list(out.glob("scaling-*/run.json"))
    return json.loads(run.read_text())


@pytest.mark.parametrize("engine", [["--engine", "null"],
                                    ["--engine", "tflite", "--model", "tiny"]],
                         ids=["null", "tflite-tiny"])
def test_scaling_runs_as_bound_job_steps(slurm_cluster, tmp_path, engine):
    if len(read_topology().usable_cores) < 2:
        pytest.skip("pinned x2 needs two usable cores")
    done = scaler_cmd("scaling", *engine, "--placement", "shared,pinned", "--instances", "1,2",
                      "--fleet", slurm_cluster.fleet, *SHORT, "--out", str(tmp_path),
                      env=env_of(slurm_cluster), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = run_doc(tmp_path)
    assert doc["status"] == "complete"
    steps = check_steps(doc, slurm_cluster)
    assert len(steps) == 6  # shared x1, x2, pinned x1, x2
    pinned2 = [g for g in doc["groups"] if g["placement"] == "pinned" and g["instances"] == 2]
    lists = sorted(i["slurm"]["worker_cpus"] for i in pinned2[0]["per_instance"])
    assert len(set(lists)) == 2  # two partitions, two different CPU sets
    assert wait_no_jobs(slurm_cluster, 10) == []


def test_a_step_bound_elsewhere_is_refused_with_both_lists(slurm_cluster):
    """A worker that re-pins itself behind Slurm's back (its spec names CPU 1 while the plan,
    and so Slurm, gives it CPU 0) is refused when its ready report arrives."""
    if len(read_topology().usable_cpus) < 2:
        pytest.skip("needs two usable CPUs")
    from scaler.fleets import FleetChoice
    from scaler.fleets.slurm import SlurmProvider
    from scaler.settings import Settings
    from scaler.targets import WorkerRequest
    from scaler.worker import protocol
    from scaler.worker.spec import WorkerSpec

    cpus = list(read_topology().usable_cpus)
    os.environ["SLURM_CONF"] = str(slurm_cluster.conf)

    async def main() -> dict:
        choice = FleetChoice("slurm", slurm_cluster.partition)
        fleet = await SlurmProvider().open(choice, Settings(fleet=str(choice),
                                                            ready_timeout_s=60))
        try:
            target = fleet.target()
            spec = WorkerSpec(engine="null", model="tiny", cpus=(cpus[1],), warmup_s=0.0)
            proc = await target.start(WorkerRequest(0, spec, {"cpus": [cpus[0]], "nodes": []},
                                                    slurm_cluster.node))
            try:
                async with asyncio.timeout(60):
                    while line := await proc.stdout.readline():
                        if (message := protocol.decode(line)) is not None:
                            return message
            finally:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 30)
        finally:
            fleet.close()
        raise AssertionError("no protocol message")

    try:
        message = asyncio.run(main())
    finally:
        os.environ.pop("SLURM_CONF", None)
    assert message["type"] == "error" and message["kind"] == "slurm binding"
    assert (f"reads back CPUs {cpus[1]} but the plan asked for CPUs {cpus[0]}"
            in message["message"])
    assert wait_no_jobs(slurm_cluster, 10) == []


def test_unknown_partition_is_refused(slurm_cluster, tmp_path):
    done = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--fleet",
                      "slurm:nosuchpartition", "--out", str(tmp_path),
                      env=env_of(slurm_cluster), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "scaler: error: --fleet slurm:nosuchpartition: Slurm has no partition "
        f"'nosuchpartition' (partitions: {slurm_cluster.partition})")


def test_allocation_not_granted_in_time_is_cancelled(slurm_cluster, tmp_path):
    """The node is held by another job: the run's allocation stays pending, is refused after
    --ready-timeout (exit 2, one line) and its pending job is cancelled."""
    blocker = subprocess.run(["salloc", "--no-shell", "-N1", "--exclusive", "-J", "blocker",
                              "-p", slurm_cluster.partition], env=slurm_cluster.env(),
                             capture_output=True, text=True, timeout=60)
    assert blocker.returncode == 0, blocker.stderr
    try:
        done = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--fleet",
                          slurm_cluster.fleet, "--ready-timeout", "2", "--out", str(tmp_path),
                          env=env_of(slurm_cluster), timeout=60)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "was not granted within --ready-timeout 2 s" in line and "cancelled" in line
        assert not any(tmp_path.iterdir())  # no run folder: no worker started
        left = squeue(slurm_cluster)
        assert [j.split()[1] for j in left] == ["blocker"]
    finally:
        subprocess.run(["scancel", "-n", "blocker"], env=slurm_cluster.env(), timeout=30)
    assert wait_no_jobs(slurm_cluster, 10) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_killed_coordinator_leaves_no_job(slurm_cluster, tmp_path, sig):
    """SIGKILL to the coordinator mid-run: the allocation's watchdog sees its pipe close,
    salloc gives the allocation back and Slurm ends the steps; Ctrl-C: the run stops, is
    saved as partial and the allocation is given back. Either way squeue is empty within
    10 s and no worker of the job is left."""
    env = {**os.environ, "SLURM_CONF": str(slurm_cluster.conf), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scaler", "scaling", "--engine", "null",
                             "--placement", "pinned", "--instances", "2", "--fleet",
                             slurm_cluster.fleet, "--min-duration", "120", "--warmup", "0",
                             "--out", str(tmp_path)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # progress lines; bounded by the deadline below
            if "measuring" in line or time.monotonic() > deadline:
                break
        steps = squeue(slurm_cluster, "-s")
        assert len(steps) >= 2, steps  # both workers run as steps
        job = steps[0].split()[0].split(".")[0]
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        assert code == (-9 if sig == signal.SIGKILL else 130)
        assert wait_no_jobs(slurm_cluster, 10) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    time.sleep(0.5)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = f"SLURM_CONF={slurm_cluster.conf}".encode() in environ
        if ours and f"SLURM_JOB_ID={job}".encode() in environ:
            left.append(pid)
    assert left == []
