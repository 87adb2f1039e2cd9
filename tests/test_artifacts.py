"""The session's artifact cache: built once however many processes ask at the same time,
a failed build is tried again, and every asker gets the same JSON value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.artifacts import Artifacts

ROOT = Path(__file__).resolve().parents[1]

ASK = """
import json, sys, time
from pathlib import Path
from tests.artifacts import Artifacts

root, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(folder):
    with open(log, "a") as f:
        f.write("built\\n")
    time.sleep(0.5)  # long enough for the other askers to arrive while it builds
    (folder / "model.bin").write_bytes(b"weights")
    return {"path": str(folder / "model.bin"), "sizes": (1, 2)}

print(json.dumps(Artifacts(root).get("model", build)))
"""


def test_concurrent_askers_share_one_build(tmp_path):
    log = tmp_path / "log"
    askers = [subprocess.Popen([sys.executable, "-c", ASK, str(tmp_path / "cache"), str(log)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(3)]
    values = [json.loads(p.communicate(timeout=120)[0]) for p in askers]
    assert log.read_text() == "built\n"
    assert values == [{"path": str(tmp_path / "cache" / "model" / "model.bin"),
                       "sizes": [1, 2]}] * 3
    assert (tmp_path / "cache" / "model" / "model.bin").read_bytes() == b"weights"


def test_a_failed_build_is_tried_again(tmp_path):
    cache = Artifacts(tmp_path)

    def broken(folder):
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError):
        cache.get("x", broken)
    assert cache.get("x", lambda folder: 7) == 7
    assert cache.get("x", broken) == 7  # built: not asked again


def test_the_session_folder_is_shared_by_xdist_workers(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert Artifacts.for_session(tmp_path / "pytest-3").root == tmp_path / "pytest-3" / "artifacts"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert Artifacts.for_session(tmp_path / "pytest-3" / "popen-gw1").root == (
        tmp_path / "pytest-3" / "artifacts")
