"""Binding, tested for real: a child process pinned by the code reports what it got."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from affinity import BindError, current_binding, thread_env

ROOT = Path(__file__).resolve().parents[2]


def in_child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("OMP_NUM_THREADS", "KMP_AFFINITY"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


REPORT = (
    "import json, os\n"
    "from affinity import bind, BindError\n"
    "try:\n"
    "    b = bind({args}).to_dict()\n"
    "except BindError as e:\n"
    "    b = {{'error': str(e)}}\n"
    "b['affinity'] = sorted(os.sched_getaffinity(0))\n"
    "b['env'] = {{k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS',"
    " 'TF_NUM_INTEROP_THREADS', 'KMP_AFFINITY', 'KMP_BLOCKTIME', 'KMP_SETTINGS')}}\n"
    "print(json.dumps(b))\n"
)


def test_child_pinned_to_cpu0_reports_it():
    got = in_child(REPORT.format(args="cpus=[0], nodes=[0]"))
    assert got["cpus"] == [0] and got["affinity"] == [0] and got["requested_cpus"] == [0]
    assert got["threads"] == 1 and got["nodes"] == [0]
    if got["memory_bound"]:
        assert got["memory_reason"] == "bound" and got["memory_policy"] == "bind:0"
    else:  # refused, as in many containers: recorded, not hidden
        assert got["memory_reason"] not in ("", "bound", "not requested")
    assert got["env"] == {
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "KMP_AFFINITY": "granularity=fine,compact,1,0",
        "KMP_BLOCKTIME": "1",
        "KMP_SETTINGS": "0",
    }


def test_refused_memory_policy_is_recorded_and_pinning_goes_on():
    got = in_child(REPORT.format(args="cpus=[0], nodes=[1000]"))  # no such node
    assert got["affinity"] == [0]
    assert got["memory_bound"] is False and "set_mempolicy refused" in got["memory_reason"]


def test_unpinned_keeps_affinity_and_sizes_threads_from_it():
    got = in_child(REPORT.format(args="None, threads=None, inter_op_threads=2"))
    allowed = sorted(os.sched_getaffinity(0))
    assert got["cpus"] == allowed and got["requested_cpus"] is None
    assert got["threads"] == len(allowed) and got["memory_reason"] == "not requested"
    assert got["env"]["KMP_AFFINITY"] == "disabled"
    assert got["env"]["TF_NUM_INTEROP_THREADS"] == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("cpus=[4095]", "cannot pin to CPUs 4095"),
        ("cpus=[0, 4095]", "asked for CPUs 0,4095 but the kernel allows only 0"),
        ("cpus=[]", "empty CPU list"),
    ],
)
def test_refused_cpus_are_bind_errors(args, message):
    got = in_child(REPORT.format(args=args))
    assert message in got["error"]


def test_current_binding_reads_without_changing_anything():
    before = os.sched_getaffinity(0)
    report = current_binding()
    assert set(report["cpus"]) == before == os.sched_getaffinity(0)
    assert report["memory_policy"].split(":")[0] in (
        "default",
        "bind",
        "preferred",
        "interleave",
        "local",
        "preferred_many",
        "weighted_interleave",
    )
    json.dumps(report)


def test_thread_env():
    assert thread_env(4)["OMP_NUM_THREADS"] == "4"
    assert thread_env(4, 2)["TF_NUM_INTEROP_THREADS"] == "2"
    assert thread_env(4, pinned=False)["KMP_AFFINITY"] == "disabled"
    with pytest.raises(BindError):
        thread_env(0)
