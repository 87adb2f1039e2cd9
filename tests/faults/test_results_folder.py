"""The results folder fills up or turns read-only during a run (a small tmpfs of the test's
own): one error line naming the folder, exit 2, and the run.json saved before intact."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import PLUGIN, SLEEPY, run_folder, wait_saved
from tests.scaler.helpers import scaler_cmd
from tests.scaler.targets.conftest import wait_gone

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_save_that_fails_mid_run_keeps_the_previous_one(small_fs, start, fault):
    out = small_fs.path / "results"
    # 1 s windows: the second group (a worker start, 0.2 s of warm-up and its 1 s) is still
    # measuring when the folder breaks, a poll (0.1 s) after the first group's save
    run = start("scaling", "--instances", "1-2", "--placement", "pinned", *SLEEPY,
                "--min-duration", "1", "--out", str(out), env=PLUGIN)
    before = wait_saved(out, 1, timeout_s=120)  # group 1 saved: now break the folder
    tree = run.tree()
    small_fs.fill() if fault == "full" else small_fs.read_only()
    code, _, err = run.finish(timeout_s=120)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("scaler: error:")]
    assert len(errors) == 1, err
    reason = "No space left on device" if fault == "full" else "Read-only file system"
    assert f"cannot save the run in {out}: {reason}" in errors[0]
    assert "keeps its previous save" in errors[0]
    folder = run_folder(out)
    saved = json.loads((folder / "run.json").read_text())
    assert saved["groups"] == before["groups"]  # intact, and readable
    assert not wait_gone(tree, 5)
    # what is shown says the save failed, and why, rather than blaming a kill
    shown = scaler_cmd("show", "--json", str(folder), timeout=60)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["status"] == "partial"
    assert any(f"after its last save failed: cannot save the run in {out}: {reason}" in r
               for r in summary["partial_reasons"]), summary["partial_reasons"]
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    if fault == "full":
        assert leftovers == []  # the half-written copy was removed (its space given back)


def test_a_full_folder_at_the_first_save(small_fs, start):
    out = small_fs.path / "results"
    out.mkdir()
    small_fs.fill()
    run = start("latency", "--placement", "pinned", *SLEEPY, "--min-duration", "1",
                "--out", str(out), env=PLUGIN)
    code, _, err = run.finish(timeout_s=120)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("scaler: error:")]
    assert len(errors) == 1 and str(out) in errors[0] and "No space left" in errors[0], err
