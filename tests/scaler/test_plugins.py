"""Plug-ins: an engine and a placement registered from test code alone run a scaling sweep.

The plug-in (``tests/scaler/plugin_example.py``) is loaded through ``SCALER_PLUGINS``, as a
user's would be; the CLI runs in a child process and its workers load the engine there.
"""

from __future__ import annotations

import json
import os

import pytest

from scaler.results import load_run
from tests.scaler.helpers import ROOT, scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

PLUGIN = {"SCALER_PLUGINS": "tests.scaler.plugin_example",
          "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_help_lists_the_plugin_engine_and_placement():
    r = scaler_cmd("scaling", "--help", env=PLUGIN, timeout=60)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "sleepy" in text and "firstcpu" in text


def test_scaling_sweep_through_a_plugin_engine_and_placement(tmp_path):
    r = scaler_cmd("scaling", "--engine", "sleepy", "--placement", "firstcpu,shared",
                   "--instances", "1-2", "--model", "tiny", "--min-duration", "1",
                   "--min-queries", "20", "--warmup", "0.1", "--out", str(tmp_path), "--json",
                   env=PLUGIN, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["engine"] == "sleepy"
    doc = load_run(summary["run"]).doc
    groups = {(g["placement"], g["instances"]): g for g in doc["groups"]}
    assert set(groups) == {("firstcpu", 1), ("firstcpu", 2), ("shared", 1), ("shared", 2)}
    for n in (1, 2):
        g = groups[("firstcpu", n)]
        assert g["status"] == "complete" and g["oversubscribed"] == (n > 1)
        for inst in g["per_instance"]:
            assert inst["partition"]["cpus"] == [0]
            assert inst["binding"]["cpus"] == [0]  # the worker pinned itself as planned
            assert inst["engine"]["engine"] == "sleepy" and inst["threads"] == 1
        # sleeping instances do not compete for the CPU: each serves ~1 / 2 ms
        assert 200 * n < g["throughput_ips"] < 520 * n
    assert "firstcpu_over_shared" in summary


def test_unknown_plugin_module_is_a_one_line_usage_error():
    r = scaler_cmd("latency", "--engine", "null", env={"SCALER_PLUGINS": "no_such_plugin_module"},
                   timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_plugin_module" in lines[0], r.stderr
