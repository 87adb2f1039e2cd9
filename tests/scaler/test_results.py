"""Run folders: atomic save, load with schema checks, upgrade of old versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaler import results
from scaler.errors import ScalerError, UsageError


def test_save_then_load_round_trip(tmp_path):
    path = tmp_path / "latency-1"
    arrays = {"g0_i0_start_ns": np.arange(5, dtype=np.int64)}
    results.save_run(path, {"scenario": "latency", "groups": []}, arrays)
    run = results.load_run(path)
    assert run.doc["schema_version"] == results.SCHEMA_VERSION
    assert run.scenario == "latency"
    assert np.array_equal(run.samples()["g0_i0_start_ns"], arrays["g0_i0_start_ns"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_saving_again_replaces_and_keeps_other_files(tmp_path):
    path = tmp_path / "scaling-1"
    results.save_run(path, {"scenario": "scaling", "groups": [1]}, {})
    (path / "scaling.png").write_bytes(b"png")
    results.save_run(path, {"scenario": "scaling", "groups": [1, 2]}, {})
    assert results.load_run(path).doc["groups"] == [1, 2]
    assert (path / "scaling.png").read_bytes() == b"png"


def test_failed_save_leaves_previous_version(tmp_path):
    path = tmp_path / "run"
    results.save_run(path, {"scenario": "latency", "groups": [1]}, {})
    with pytest.raises(TypeError):
        results.save_run(path, {"scenario": "latency", "groups": [object()]}, {})
    assert results.load_run(path).doc["groups"] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("content, message", [
    ("{oops", "corrupt run file"),
    ('["a list"]', "not a scaler run file"),
    ('{"schema_version": 99, "scenario": "latency"}', "newer than this scaler"),
    ('{"schema_version": "1", "scenario": "latency"}', "bad schema_version"),
])
def test_foreign_or_corrupt_files_are_clear_errors(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(ScalerError, match=message):
        results.load_run(tmp_path)


def test_missing_folder_and_folder_without_run(tmp_path):
    with pytest.raises(UsageError, match="no such run folder"):
        results.load_run(tmp_path / "nope")
    with pytest.raises(ScalerError, match="not a scaler run folder"):
        results.load_run(tmp_path)


def test_old_schema_versions_are_upgraded(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(results.UPGRADES, 1, lambda d: {**d, "schema_version": 2, "new": True})
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 1, "scenario": "latency"}))
    assert results.load_run(tmp_path).doc["new"] is True


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot create output folder"):
        results.check_output_dir(blocker / "sub")


def test_a_committed_schema_1_run_is_upgraded_to_points(tmp_path):
    """A real run measured and saved by scaler before repeats existed (results/reference)."""
    from scaler.summaries import summarize
    from tests.scaler.helpers import ROOT

    folder = next((ROOT / "results" / "reference").glob("suite-*/scaling-*"))
    assert json.loads((folder / "run.json").read_text())["schema_version"] == 1
    run = results.load_run(folder)
    assert run.doc["schema_version"] == results.SCHEMA_VERSION
    assert len(run.doc["points"]) == len(run.doc["groups"])  # one repeat each
    summary = summarize(run.doc, str(folder))
    for series in summary["series"]:
        for p in series["points"]:
            assert p["ci95_ips"] is None and len(p["repeats_ips"]) == 1
            assert p["noisy"] is False and p["others_cpu_share"] is None  # not measured then
    assert all(c["ci95"] is None and not c["significant"] for c in summary["comparisons"])
