"""The serial group's check: a test that takes the measurement lock without
``@pytest.mark.serial`` fails loudly; with the marker it passes, in the serial xdist group."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = '''
import pytest
from scaler import lock


def take_the_lock():
    with lock.acquire([0]) as held:
        assert held.mode == "locked"


def test_unmarked_takes_the_lock():
    take_the_lock()


@pytest.mark.serial
def test_marked_takes_the_lock():
    take_the_lock()


def test_unmarked_only_computes():
    assert 1 + 1 == 2


@pytest.mark.serial
def test_marked_group(request):
    names = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    assert names == ["serial"]
'''


def test_a_test_taking_the_measurement_lock_without_the_marker_fails(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_locks.py").write_text(TESTS)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::pytest.PytestUnknownMarkWarning", "-rA",
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "ERROR test_locks.py::test_unmarked_takes_the_lock" in out
    assert ("test_locks.py::test_unmarked_takes_the_lock took the measurement lock (run-" in out
            and "without @pytest.mark.serial" in out)
    for passed in ("test_marked_takes_the_lock", "test_unmarked_only_computes",
                   "test_marked_group"):
        assert f"PASSED test_locks.py::{passed}" in out
    assert "1 passed, 1 error" not in out and "4 passed, 1 error" in out


GROUPED = '''
import os
import subprocess
import time

import pytest


def record(tag):
    # where this test ran: low (a scaler-tests- cgroup or nice 3) or as started
    # (its own worker's cgroup: this session may itself run inside another's low cgroup)
    groups = open("/proc/self/cgroup").read()
    own = f"scaler-tests-{os.getpid()}"
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    low = own in groups or nice == 3
    with open(os.path.join(os.environ["WHERE"], f"{tag}-{os.getpid()}-{int(low)}"), "w") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "none"))
    if own in groups:  # a child it starts is in the same cgroup
        child = subprocess.run(["cat", "/proc/self/cgroup"], capture_output=True, text=True,
                               start_new_session=True, timeout=30).stdout
        assert own in child
    time.sleep(0.2)


@pytest.mark.serial
@pytest.mark.parametrize("k", range(6))
def test_serial(k):
    record(f"serial{k}")


@pytest.mark.parametrize("k", range(6))
def test_free(k):
    record(f"free{k}")
'''


def test_serial_tests_run_on_one_xdist_worker_under_make_tests_options(tmp_path):
    """What ``make test`` relies on: with ``-n 2 --dist loadgroup`` every serial test runs in
    one worker process, the others on both; the others at a low CPU weight (tests/priority.py:
    a cgroup of low weight holding what they start, even in a session of its own; nice 3
    where none can be made), the group's tests as the worker started (a serial test after a
    free one on the same worker shows it was put back; root may lower a nice again); the
    low cgroups gone at the end. (pytest 9.2 with pytest-xdist 3.8 silently dropped the
    grouping, and tests that measure ran side by side.)"""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    where = tmp_path / "where"
    where.mkdir()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::pytest.PytestUnknownMarkWarning", "-n", "2",
                           "--dist", "loadgroup", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "WHERE": str(where)})
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [(p.name.split("-")[0], p.name.split("-")[1], p.read_text()) for p in where.iterdir()]
    serial = {(pid, worker) for tag, pid, worker in runs if tag.startswith("serial")}
    free = {(pid, worker) for tag, pid, worker in runs if tag.startswith("free")}
    assert len(runs) == 12
    low = {p.name.split("-")[0]: p.name.split("-")[2] == "1" for p in where.iterdir()}
    assert all(low[f"free{k}"] for k in range(6)), low
    if os.geteuid() == 0:
        assert not any(low[f"serial{k}"] for k in range(6)), low
    for _, pid, _ in runs:  # each worker removed its low cgroup as it ended
        assert not any(Path(root, f"scaler-tests-{pid}").exists()
                       for root in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup"))
    assert len(serial) == 1, f"serial tests ran in {sorted(serial)}"
    assert len({worker for _, worker in serial | free}) == 2  # really two workers
