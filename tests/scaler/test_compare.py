"""``scaler compare`` on real runs: a run against itself shows no difference; two runs of
different engines are told apart, each ratio with its interval."""

from __future__ import annotations

import json

import pytest

from tests.scaler.helpers import scaler_cmd
from tests.scaler.test_plugins import PLUGIN

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

SHORT = ["--min-duration", "0.5", "--min-queries", "10", "--warmup", "0.1", "--repeat", "3"]


@pytest.fixture(scope="module")
def sleepy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    r = scaler_cmd("scaling", "--engine", "sleepy", "--model", "tiny", "--instances", "1-2",
                   "--placement", "pinned", *SHORT, "--out", str(out), "--json", env=PLUGIN,
                   timeout=240)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_repeats_give_every_point_an_interval(sleepy_run):
    (series,) = sleepy_run["series"]
    for p in series["points"]:
        assert len(p["repeats_ips"]) == 3
        low, high = p["ci95_ips"]
        assert low <= sum(p["repeats_ips"]) / 3 <= high  # a t-interval around the mean
        assert set(p) >= {"throughput_ips", "ci95_ips", "repeats_ips", "noisy",
                          "others_cpu_share", "unstable"}


def test_compare_of_a_run_with_itself_finds_no_significant_difference(sleepy_run):
    r = scaler_cmd("compare", sleepy_run["run"], sleepy_run["run"], "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["comparisons"]
    assert [c["instances"] for c in rows] == [1, 2]
    for c in rows:
        assert c["ratio"] == pytest.approx(1.0) and c["significant"] is False
        assert c["ci95"][0] <= 1.0 <= c["ci95"][1]
        assert set(c) >= {"placement", "engine", "precision", "instances", "ratio", "ci95",
                          "p_value", "significant"}
    text = scaler_cmd("compare", sleepy_run["run"], sleepy_run["run"], timeout=60).stdout
    assert "~ (1.00x" in text


def test_compare_tells_a_real_difference(sleepy_run, tmp_path):
    """The null engine serves ~1e6 queries/s, the sleepy one ~500: B/A is huge and
    significant (an interval far above 1)."""
    r = scaler_cmd("scaling", "--engine", "null", "--instances", "1-2", "--placement",
                   "pinned", *SHORT, "--out", str(tmp_path), "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    other = json.loads(r.stdout)["run"]
    r = scaler_cmd("compare", sleepy_run["run"], other, "--json", env=PLUGIN, timeout=60)
    assert r.returncode == 0, r.stderr
    for c in json.loads(r.stdout)["comparisons"]:
        assert c["significant"] is True and c["ci95"][0] > 100
        assert c["a"]["engine"] == "sleepy" and c["b"]["engine"] == "null"


def test_compare_without_common_points_is_a_usage_error(sleepy_run, tmp_path):
    r = scaler_cmd("latency", "--engine", "null", "--min-duration", "0.2", "--warmup", "0",
                   "--out", str(tmp_path), "--json", timeout=120)
    other = json.loads(r.stdout)["run"]
    r = scaler_cmd("compare", sleepy_run["run"], other, timeout=60)
    assert r.returncode == 2 and "no point was measured in both" in r.stderr
