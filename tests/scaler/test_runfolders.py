"""Run folders: the output folder, names claimed per process, the sweep of what dead writers
left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaler import results, runfolders
from scaler.errors import UsageError


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot create output folder"):
        runfolders.check_output_dir(blocker / "sub")


def test_check_output_dir_creates_nested_folders(tmp_path):
    out = runfolders.check_output_dir(str(tmp_path / "a" / "b"))
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert runfolders.check_output_dir(out) == out  # existing: fine


def test_new_run_path_never_reuses_a_folder(tmp_path, monkeypatch):
    import datetime

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 5, 6, 7, 8, 9)

    monkeypatch.setattr(runfolders._dt, "datetime", Frozen)
    first = runfolders.new_run_path(tmp_path, "scaling")
    assert first == tmp_path / "scaling-20240506-070809"
    first.mkdir()
    second = runfolders.new_run_path(tmp_path, "scaling")
    assert second == tmp_path / "scaling-20240506-070809-2"
    second.mkdir()
    assert runfolders.new_run_path(tmp_path, "scaling").name == "scaling-20240506-070809-3"
    assert runfolders.new_run_path(tmp_path, "latency").name == "latency-20240506-070809"


def test_claims_of_a_run_that_never_saved_are_released(tmp_path):
    path = runfolders.new_run_path(tmp_path, "latency")
    assert [p.name for p in tmp_path.iterdir()] == [f".{path.name}.claim"]
    runfolders.release_claims(tmp_path)
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
    removed = runfolders.sweep_stale(tmp_path)
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
    assert sorted(runfolders.sweep_stale(tmp_path)) == sorted(stale)
    assert results.load_run(run).samples()["g0_i0_end_ns"].tolist() == [0, 1, 2]


def test_a_folder_this_user_cannot_write_is_refused():
    """As a user without write access (as root: with the real user id set to nobody's, which
    os.access checks), an existing folder is refused with a one-line UsageError."""
    import os
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="scaler-test-"))  # under /tmp: every user may enter
    try:
        top.chmod(0o755)
        folder = top / "readonly"
        folder.mkdir(mode=0o755)
        if os.geteuid() == 0:
            os.setreuid(65534, 0)  # real uid nobody, effective uid still root (to switch back)
            try:
                assert os.access(folder, os.F_OK) and not os.access(folder, os.W_OK)
                with pytest.raises(UsageError) as info:
                    runfolders.check_output_dir(folder)
            finally:
                os.setreuid(0, 0)
        else:
            folder.chmod(0o555)
            with pytest.raises(UsageError) as info:
                runfolders.check_output_dir(folder)
            folder.chmod(0o755)
        assert str(info.value) == f"output folder {folder} is not a writable folder"
        assert runfolders.check_output_dir(folder) == folder  # its owner may write
    finally:
        shutil.rmtree(top)
