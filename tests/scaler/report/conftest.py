"""A real suite to report on, and the headless browser that looks at the report.

The suite is measured once per session with the null engine (``tests/suites.py``: real worker
processes, real pinning, the real noise meter; no inference), the smallest that still has
every experiment and two repeats: about half a minute on 2 busy cores, shared by every report
test and the README's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scaler.helpers import ROOT, scaler_cmd
from tests.scaler.report.browser import find_chromium
from tests.suites import SUITE_ARGS, null_suite  # noqa: F401  (SUITE_ARGS: read by tests)

REFERENCE = sorted((ROOT / "results" / "reference").glob("suite-*"))[0]


@pytest.fixture(scope="session")
def suite(artifacts) -> dict:
    """``scaler suite`` as a user runs it (tests/suites.py: measured once, shared with the
    README's tests): its folder, its report and what it printed."""
    return null_suite(artifacts)


@pytest.fixture(scope="session")
def predicted(suite, tmp_path_factory) -> Path:
    """``scaler report`` of the suite plus a committed reference run of another machine,
    with a prediction for the study's server: every section has something to show."""
    out = tmp_path_factory.mktemp("predicted") / "mixed.html"
    r = scaler_cmd("report", str(suite["folder"]), str(next(REFERENCE.glob("scaling-*"))),
                   "--machine", "2s28c2t", "--machine-instances", "1,2,4,8", "--assume",
                   "core_speed=0.8", "--queries", "5000", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"report: {out}"
    return out


@pytest.fixture(scope="session")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium-headless-shell or chromium on PATH (`make install` installs "
                    "Debian's chromium-headless-shell)")
    return binary


def layout_kind_runs(folder: Path) -> dict[str, str]:
    """The suite's runs (name -> path as suite.json records it) of the scaling run's engine,
    precision and model: those the simulator calibrates on (``--quick`` measures the
    layouts in int8)."""
    recorded = json.loads((folder / "suite.json").read_text())["runs"]

    def kind(path: str) -> tuple:
        eff = json.loads((folder / Path(path).name / "run.json").read_text())["effective"]
        return eff["engine"], eff["precision"], eff["model"]

    return {k: p for k, p in recorded.items() if kind(p) == kind(recorded["scaling"])}
