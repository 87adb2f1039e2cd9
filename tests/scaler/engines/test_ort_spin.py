"""ONNX Runtime's spin back-off for real (``scaler.engines.ort_spin``): a child process runs a
small session and reads the CPU its pool thread burns over idle gaps. Judged as a ratio of
spinning on (``defaults``) to off (``tuned``: ``allow_spinning=0``) in the same test, and as
shares of the gaps' wall time, never as a speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scaler.engines import ort_spin

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                reason="a pool thread needs 2+ CPUs")


def test_spinning_burns_cpu_over_idle_gaps_and_allow_spinning_0_does_not(tmp_path):
    out = tmp_path / "w.json"
    done = subprocess.run([sys.executable, "-m", "scaler.engines.ort_spin", "--styles",
                           "defaults,tuned", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert "defaults" in done.stdout and "over 1 repeats" in done.stdout
    doc = ort_spin.load(out)
    on, off = doc["styles"]["defaults"], doc["styles"]["tuned"]
    assert on["pool_threads"] == off["pool_threads"] == 1  # 2 threads: the caller and one
    assert off["config"]["session.intra_op.allow_spinning"] == "0"
    assert "session.intra_op.allow_spinning" not in on["config"]  # ORT's default: spin

    def burnt(m):
        return sum(sum(r["cpu_per_pool_thread_ms"]) for r in m["series"])

    wall = sum(sum(r["wall_ms"]) for r in on["series"])
    assert burnt(on) > 10.0 * burnt(off), (burnt(on), burnt(off))
    assert burnt(on) > 0.01 * wall  # a spinner takes a share of the gaps on any machine
    assert burnt(off) < 0.01 * wall
    assert on["spins"] and not off["spins"] and off["spin_cpu_ms"] == 0.0
    assert not list(tmp_path.glob("*.tmp"))


def test_a_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ValueError, match="not a spin window file"):
        ort_spin.load(bad)
    with pytest.raises(ValueError, match="cannot read"):
        ort_spin.load(tmp_path / "none.json")


@pytest.mark.parametrize("argv,needle", [(["--styles", "warp"], "unknown threading style"),
                                         (["--repeats", "0"], "1+ repeats")])
def test_bad_input_is_one_line_exit_2(argv, needle):
    done = subprocess.run([sys.executable, "-m", "scaler.engines.ort_spin", *argv],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and needle in done.stderr
