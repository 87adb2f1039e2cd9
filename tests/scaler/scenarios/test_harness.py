"""The harness's share of a server figure (``scenarios.harness``): null probes in the same
run, kept in run.json beside the groups, and the note when the harness is over 5% of a
measured p50."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler.scenarios.harness import SHARE_LIMIT, share_note
from tests.scaler.helpers import scaler_cmd
from tests.scaler.test_plugins import PLUGIN

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def test_the_note_says_when_the_harness_is_over_its_share():
    assert share_note("pinned x1", 100.0, 0.049, 1.0) is None
    note = share_note("pinned x1", 100.0, 0.2, 1.0)
    assert note is not None and "pinned x1 at 100 qps" in note and "200 µs" in note
    assert "20%" in note and f"over {100 * SHARE_LIMIT:.0f}%" in note


def test_a_fixed_rate_run_records_the_harness_at_its_rate(tmp_path):
    """The sleepy engine (2 ms a query) at 250 requests/s (half its capacity): run.json
    holds one null probe per layout at the same rate, with its latency and its share of the
    measured p50; the share is what the two figures make it, and the note follows the 5%
    rule. (250, not 100: the group's 662 requests and the probe's 1,000 take 2.6 s and 4 s
    there, 6.6 s and 10 s at 100.)"""
    r = scaler_cmd("server", "--engine", "sleepy", "--model", "tiny", "--target-qps", "250",
                   "--latency-bound-ms", "100", "--placement", "pinned", "--min-duration",
                   "0.5", "--warmup", "0", "--out", str(tmp_path), "--json", env=PLUGIN,
                   timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    doc = json.loads((Path(summary["run"]) / "run.json").read_text())
    (group,) = doc["groups"]
    (h,) = doc["harness"]
    assert h["kind"] == "at_rate" and h["engine"] == "null" and h["layout"] == "pinned x1"
    assert h["target_qps"] == 250.0 and h["completed"] == h["requests"] >= 1000
    assert h["measured_p50_ms"] == group["latency_ms"]["p50"]
    assert h["share_of_measured_p50"] == h["latency_ms"]["p50"] / h["measured_p50_ms"]
    noted = any("partly the harness" in n for n in doc["notes"])
    assert noted == (h["share_of_measured_p50"] > SHARE_LIMIT)
    assert summary["harness"] == [h]
    assert not [g for g in doc["groups"] if g.get("engine") == "null"]  # not a group
