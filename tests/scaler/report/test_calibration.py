"""Which runs calibrate the simulator when none are named: the newest measured suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaler.errors import UsageError
from scaler.report.calibration import newest_suite
from tests.scaler.helpers import scaler_cmd
from tests.scaler.report.conftest import layout_kind_runs

# reads the session's suite (tests/suites.py: measured first in the serial group by
# test_suite_built.py) and runs no measurement: beside the serial group


def fake_suite(base: Path, name: str, created: str, simulated: bool = False) -> Path:
    """A folder of run.json files holding only what the choice reads (hand-written)."""
    folder = base / name
    (folder / "latency-x").mkdir(parents=True)
    (folder / "latency-x" / "run.json").write_text(json.dumps(
        {"schema_version": 2, "scenario": "latency", "created": created,
         "simulated": simulated}))
    return folder


def test_the_newest_measured_suite_wins(tmp_path):
    fake_suite(tmp_path, "suite-20261101-000000", "2026-11-01T00:00:00+00:00")
    # named after its start, but its newest run is the newest of all
    newer = fake_suite(tmp_path, "suite-20261031-000000", "2026-11-02T00:00:00+00:00")
    fake_suite(tmp_path, "suite-20261103-000000", "2026-11-03T00:00:00+00:00",
               simulated=True)
    fake_suite(tmp_path / "reference", "suite-20261104-000000", "2026-11-04T00:00:00+00:00")
    assert newest_suite(tmp_path) == newer
    with pytest.raises(UsageError, match="no measured suite under"):
        newest_suite(tmp_path / "nothing")


def test_simulate_without_runs_calibrates_on_the_newest_suite(suite, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / suite["folder"].name).symlink_to(suite["folder"], target_is_directory=True)
    r = scaler_cmd("simulate", "--instances", "1-2", "--queries", "2000", "--json",
                   cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    note = next(ln for ln in r.stderr.splitlines() if "calibrating on" in ln)
    assert f"results/{suite['folder'].name}" in note
    summary = json.loads(r.stdout)
    assert summary["simulated"] is True
    run = json.loads((tmp_path / summary["run"] / "run.json").read_text())
    used = sorted(Path(p).name for p in run["requested"]["calibration_runs"])
    expected = sorted(Path(p).name for p in layout_kind_runs(suite["folder"]).values())
    assert used == expected
    assert all(name in note for name in used)


def test_simulate_without_runs_or_suite_is_one_line_exit_2(tmp_path):
    r = scaler_cmd("simulate", cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no measured suite under results" in lines[0], r.stderr
