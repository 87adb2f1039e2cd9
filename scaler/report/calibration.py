"""Which measured runs the simulator calibrates on: the runs of a suite that share the
scaling run's engine, precision and model (``calibrate`` refuses a mix), and the newest
measured suite under a results folder when no run is named (``scaler simulate`` with no
runs, ``scaler report --machine``)."""

from __future__ import annotations

import json
from pathlib import Path

from scaler.errors import UsageError
from scaler.results import RUN_FILE, Run, find_runs

STUDY_RUN = "scaling-model-zoo"  # scaler.suite_study.STUDY_RUN (kept light to import)


def _kind(run: Run) -> tuple[str, str, str]:
    e = run.doc.get("effective", {})
    return (e.get("engine"), e.get("precision"), e.get("model"))


def _experiment(run: Run) -> str | None:
    return run.doc.get("requested", {}).get("experiment")


def _host(run: Run) -> str | None:
    return run.doc.get("host", {}).get("hostname")


def calibration_runs(runs: list[Run]) -> tuple[list[Run], Run | None]:
    """The measured runs to calibrate on and the scaling run among them (None without one):
    the newest measured scaling run other than a suite's run of the study's bare metal
    (else the newest measured run) and every measured run of the same host and kind (engine,
    precision, model): one machine, one instance model."""
    measured = [r for r in runs if not r.doc.get("simulated")]
    if not measured:
        raise UsageError("no measured run to calibrate the simulator on (simulated runs "
                         "cannot calibrate it)")

    def newest(rs: list[Run]) -> Run | None:
        return max(rs, key=lambda r: str(r.doc.get("created", "")), default=None)

    sweeps = [r for r in measured if r.scenario == "scaling"]
    # a suite's run of the study's bare metal (one instance count, another engine) never
    # anchors the calibration while the suite's scaling sweep is there
    scaling = newest([r for r in sweeps if _experiment(r) != STUDY_RUN] or sweeps)
    anchor = scaling or newest(measured)
    return [r for r in measured if _kind(r) == _kind(anchor) and _host(r) == _host(anchor)], \
        scaling


def _measured_stamps(folder: Path) -> list[str]:
    """The ``created`` stamps of a folder's measured runs (ISO text sorts in time order)."""
    stamps = []
    for run_file in folder.glob(f"*/{RUN_FILE}"):
        try:
            doc = json.loads(run_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and not doc.get("simulated"):
            stamps.append(str(doc.get("created", "")))
    return stamps


def newest_suite(results: Path) -> Path:
    """The newest suite folder (``suite-*`` holding measured run folders) directly under
    ``results``, by the newest run it holds. Suites further down (the committed
    ``results/reference/``, another machine's) are used only when named."""
    stamps = {p: _measured_stamps(p) for p in results.glob("suite-*") if p.is_dir()}
    measured = {p: max(s) for p, s in stamps.items() if s}
    if not measured:
        raise UsageError(f"no runs given and no measured suite under {results}/: give runs "
                         "to calibrate on (RUN...), or measure one with `scaler suite`")
    return max(measured, key=lambda p: (measured[p], p.name))


def default_calibration(results: Path) -> tuple[list[Run], str]:
    """The calibration runs of the newest measured suite under ``results`` and a line
    saying which they are."""
    suite = newest_suite(results)
    runs, _ = calibration_runs(find_runs([str(suite)]))
    names = ", ".join(r.path.name for r in runs)
    return runs, f"calibrating on the newest measured suite {suite}: {names}"
