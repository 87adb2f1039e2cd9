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
GAPS = (2.0, 20.0, 50.0)


def test_spinning_burns_cpu_over_idle_gaps_and_allow_spinning_0_does_not():
    on = ort_spin.measure("defaults", threads=2, gaps_ms=GAPS, repeats=2, timeout_s=120)
    off = ort_spin.measure("tuned", threads=2, gaps_ms=GAPS, repeats=2, timeout_s=120)
    assert on["pool_threads"] == off["pool_threads"] == 1
    assert off["config"]["session.intra_op.allow_spinning"] == "0"

    def burnt(m):
        return sum(sum(r["cpu_per_pool_thread_ms"]) for r in m["series"])

    wall = sum(sum(r["wall_ms"]) for r in on["series"])
    assert burnt(on) > 10.0 * burnt(off), (burnt(on), burnt(off))
    assert burnt(on) > 0.01 * wall  # a spinner takes a share of the gaps on any machine
    assert burnt(off) < 0.01 * wall
    assert on["spins"] and not off["spins"] and off["spin_cpu_ms"] == 0.0


def test_the_command_writes_a_file_simulate_reads(tmp_path):
    out = tmp_path / "w.json"
    done = subprocess.run([sys.executable, "-m", "scaler.engines.ort_spin", "--styles",
                           "tuned", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "tuned" in done.stdout and "over 1 repeats" in done.stdout
    doc = ort_spin.load(out)
    assert doc["styles"]["tuned"]["repeats"] == 1 and not list(tmp_path.glob("*.tmp"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ValueError, match="not a spin window file"):
        ort_spin.load(bad)
