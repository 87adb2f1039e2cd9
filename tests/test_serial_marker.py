"""The serial group's check: a test that takes the measurement lock without
``@pytest.mark.serial`` fails loudly; with the marker it passes, in the serial xdist group."""

from __future__ import annotations

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
