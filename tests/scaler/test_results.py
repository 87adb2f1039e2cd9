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


# -- saves that fail, names taken twice, what dead writers leave ------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs of our own (root only): fills up, and can turn read-only."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30, check=False)


def incompressible(nbytes: int, group: int = 0) -> dict:
    return {f"g{group}_i0_start_ns": np.random.default_rng(0).integers(0, 2**62, nbytes // 8)}


def test_a_full_folder_keeps_the_previous_save(small_fs):
    path = small_fs / "scaling-1"
    results.save_run(path, {"scenario": "scaling", "groups": [1]}, incompressible(64 << 10))
    with pytest.raises(results.ResultsWriteError) as info:
        results.save_run(path, {"scenario": "scaling", "groups": [1, 2]},
                         {**incompressible(64 << 10), **incompressible(1 << 20, group=1)})
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"cannot save the run in {small_fs}: No space left on device")
    assert "keeps its previous save" in message
    assert results.load_run(path).doc["groups"] == [1]
    assert len(results.load_run(path).samples()["g0_i0_start_ns"]) == (64 << 10) // 8
    assert sorted(p.name for p in small_fs.iterdir()) == ["scaling-1"]  # no half-written copy
    results.save_run(path, {"scenario": "scaling", "groups": [1, 2]}, {})  # space came back


def test_a_folder_turned_read_only_keeps_the_previous_save(small_fs):
    import subprocess

    path = small_fs / "latency-1"
    results.save_run(path, {"scenario": "latency", "groups": [1]}, {})
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True, timeout=30)
    with pytest.raises(results.ResultsWriteError, match="Read-only file system"):
        results.save_run(path, {"scenario": "latency", "groups": [1, 2]}, {})
    assert results.load_run(path).doc["groups"] == [1]
    with pytest.raises(results.ResultsWriteError, match="cannot write in the results folder"):
        results.new_run_path(small_fs, "latency")


def test_a_first_save_that_fails_says_nothing_was_written(small_fs):
    with pytest.raises(results.ResultsWriteError, match=r"\(latency-1 was not written\)"):
        results.save_run(small_fs / "latency-1", {"scenario": "latency"},
                         incompressible(1 << 20))


def test_two_runs_started_in_one_second_get_two_folders(tmp_path):
    """Today both would get the same name, and each save of one replaces the other's."""
    a = results.new_run_path(tmp_path, "scaling")
    b = results.new_run_path(tmp_path, "scaling")
    assert a != b and a.name.startswith("scaling-") and b.name.startswith("scaling-")
    results.save_run(a, {"scenario": "scaling", "groups": ["a"]}, {})
    results.save_run(b, {"scenario": "scaling", "groups": ["b"]}, {})
    assert results.load_run(a).doc["groups"] == ["a"]
    assert results.load_run(b).doc["groups"] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])


def test_claims_of_a_run_that_never_saved_are_released(tmp_path):
    path = results.new_run_path(tmp_path, "latency")
    assert [p.name for p in tmp_path.iterdir()] == [f".{path.name}.claim"]
    results.release_claims(tmp_path)
    assert not list(tmp_path.iterdir())


def dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


def test_what_dead_writers_left_is_swept_and_nothing_else(tmp_path):
    import os

    dead, me = dead_pid(), os.getpid()
    stale = [tmp_path / f".scaling-1.tmp-{dead}", tmp_path / f".scaling-2.old-{dead}"]
    live = [tmp_path / f".scaling-3.tmp-{me}", tmp_path / "scaling-4", tmp_path / ".hidden"]
    for folder in stale + live:
        folder.mkdir()
        (folder / "run.json").write_text("{}")
    (tmp_path / ".scaling-5.claim").write_text(f"{dead}\n")
    (tmp_path / ".scaling-6.claim").write_text(f"{os.getppid()}\n")
    removed = results.sweep_stale(tmp_path)
    assert sorted(removed) == sorted([*stale, tmp_path / ".scaling-5.claim"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in live] + [".scaling-6.claim"])


def test_half_written_files_of_a_dead_writer_inside_run_folders_are_swept(tmp_path):
    dead = dead_pid()
    run = tmp_path / "suite-1" / "scaling-1"
    results.save_run(run, {"scenario": "scaling", "groups": []}, {"g0_i0_end_ns": np.arange(3)})
    stale = [run / f".run.json.tmp-{dead}", run / "samples" / f".g1.npz.tmp-{dead}"]
    for path in stale:
        path.write_text("half")
    assert sorted(results.sweep_stale(tmp_path)) == sorted(stale)
    assert results.load_run(run).samples()["g0_i0_end_ns"].tolist() == [0, 1, 2]
