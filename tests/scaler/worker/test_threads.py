"""The worker's thread read-back and spin share (``scaler.worker.threads``), real processes.

Speed-independent: the spin test compares two shares measured the same way on the same
machine (ONNX Runtime's intra-op pool spinning after a query against the same pool told not
to spin); the read-back tests check CPU lists, never times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from scaler.worker import threads
from tests.scaler.helpers import ROOT


def _spin(on: bool) -> dict:
    r = subprocess.run([sys.executable, "-m", "tests.scaler.worker.spin_child", "1" if on else "0"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_spin_share_high_with_spinning_and_near_zero_without():
    # ONNX Runtime spins its intra-op threads after a run unless told not to: the idle gap
    # after the queries sees that spin as CPU time; without spinning the pool sleeps at once
    on, off = _spin(True), _spin(False)
    assert on["threads"] == off["threads"] == 2
    assert on["gap_s"] >= 0.1 and off["gap_s"] >= 0.1
    assert on["share"] > 10 * off["share"], (on, off)
    assert on["cpu_s"] > 0


def test_snapshot_reads_every_thread_of_this_process():
    table = threads.snapshot()
    assert {t["tid"] for t in table} == {int(t) for t in os.listdir("/proc/self/task")}
    main = next(t for t in table if t["tid"] == os.getpid())
    allowed = threads.cpus_of(main["cpus"])
    assert set(allowed) == os.sched_getaffinity(0)
    assert main["cpu_s"] >= 0


def test_bind_compact_binds_thread_k_to_core_k_and_reads_it_back():
    # a child whose native compute threads (OpenBLAS's pool, two threads) work a while
    code = """
import json, os
import numpy as np
from scaler.worker import threads
cpus = tuple(sorted(os.sched_getaffinity(0)))
before = threads.snapshot()
a = np.ones((768, 768))
for _ in range(40):
    a = a @ a / 768.0
back = threads.read_back(cpus, before)
back = threads.bind_compact(back, cpus)
print(json.dumps({"back": back, "cores": threads.compact_cores(cpus)}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    back, cores = out["back"], out["cores"]
    by_tid = {t["tid"]: t["cpus"] for t in back["threads"]}
    assert len(back["compute_tids"]) >= 1  # the main thread at least, OpenBLAS's with it
    for k, tid in enumerate(back["compute_tids"]):
        assert by_tid[tid] == str(cores[k % len(cores)])
    if len(os.sched_getaffinity(0)) > 1:
        assert back["per_thread_bound"] and back["bound_by"].startswith("scaler")


def test_idle_spin_of_a_sleeping_process_is_small():
    # this process does nothing during the gap (the test runner's threads sleep)
    result = threads.idle_spin(2, gap_s=0.05)
    assert result["share"] is not None and result["share"] < 0.5
