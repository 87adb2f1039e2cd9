"""The server scenario through the CLI: the peak search and its JSON, on the null engine,
the sleepy test engine (a known 2 ms service: its peak can be worked out) and the tiny
model."""

from __future__ import annotations

import json

import pytest

from scaler.scenarios.server import next_rate
from tests.scaler.helpers import scaler_cmd
from tests.scaler.test_plugins import PLUGIN

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

FAST = ["--min-duration", "0.2", "--warmup", "0", "--peak-precision", "0.1"]


def test_the_rate_search_doubles_then_bisects():
    rates, good, bad = [], 0.0, None
    while (rate := next_rate(good, bad, 10.0, 0.1, 10 / 64)) is not None:
        rates.append(rate)
        good, bad = (rate, bad) if rate <= 75 else (good, rate)
    assert rates[:4] == [10.0, 20.0, 40.0, 80.0]
    assert 75 * 0.9 <= good <= 75 and (bad - good) / good <= 0.1


def test_the_rate_search_halves_when_the_start_fails_and_gives_up_at_the_floor():
    assert next_rate(0.0, 10.0, 10.0, 0.1, 1.0) == 5.0
    assert next_rate(0.0, 1.5, 10.0, 0.1, 1.0) is None  # 0.75 would be under the floor
    rates, good, bad = [], 0.0, None
    while (rate := next_rate(good, bad, 100.0, 0.05, 100 / 64)) is not None:
        rates.append(rate)
        good, bad = (rate, bad) if rate <= 30 else (good, rate)
    assert rates[:3] == [100.0, 50.0, 25.0] and 30 * 0.95 <= good <= 30


def run_server(tmp_path, *args, env=None, timeout=300):
    r = scaler_cmd("server", *args, "--out", str(tmp_path), "--json", env=env or {},
                   timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_find_peak_on_the_sleepy_engine_lands_below_its_capacity(tmp_path):
    """One instance serving in 2 ms has capacity 500/s; with a 100 ms bound at p99 its
    queue (M/D/1) holds the bound up to about 95% load, so the peak lies in 300..500."""
    out = run_server(tmp_path, "--engine", "sleepy", "--model", "tiny", "--find-peak",
                     "--latency-bound-ms", "100", "--placement", "pinned", *FAST, env=PLUGIN)
    peak = out["peak_qps"]["pinned x1"]
    assert peak is not None and 300 <= peak <= 500, out["peak_qps"]
    results = out["results"]
    assert len(results) >= 3  # the search started at half the closed-loop capacity
    for r in results:
        assert set(r) >= {"placement", "instances", "target_qps", "achieved_qps", "latency_ms",
                          "early_stopping_p99_ms", "generator_lag_ms", "valid"}
    failed = [r for r in results if not r["meets_bound"]]
    assert failed and all(r["target_qps"] > peak for r in failed)


def test_find_peak_on_the_null_engine_is_bounded_by_the_harness(tmp_path):
    """The null engine infers nothing: the peak is what the generator and the protocol carry
    before the generator falls behind (invalid) or queueing breaks the bound."""
    out = run_server(tmp_path, "--engine", "null", "--find-peak", "--target-qps", "500",
                     "--latency-bound-ms", "50", "--placement", "pinned", *FAST)
    peak = out["peak_qps"]["pinned x1"]
    assert peak is not None and peak >= 500
    assert any(not r["meets_bound"] for r in out["results"])


def test_find_peak_on_the_tiny_model(tmp_path):
    out = run_server(tmp_path, "--model", "tiny", "--find-peak", "--target-qps", "50",
                     "--latency-bound-ms", "100", "--placement", "pinned", *FAST, timeout=600)
    peak = out["peak_qps"]["pinned x1"]
    assert peak is not None and peak > 0  # how high depends on the machine's load: no figure
    probes = out["results"]
    assert all(r["valid"] or not r["meets_bound"] for r in probes)
    # the peak is a probe that met the bound, bracketed by a higher one that did not, within
    # the search's precision (10%)
    at_peak = [r for r in probes if r["target_qps"] == peak]
    assert at_peak and all(r["meets_bound"] and r["valid"] for r in at_peak)
    above = min(r["target_qps"] for r in probes if r["target_qps"] > peak)
    assert not any(r["meets_bound"] for r in probes if r["target_qps"] == above)
    assert (above - peak) / peak <= 0.1 + 1e-3  # --peak-precision 0.1 (rates kept to 1/1000)
