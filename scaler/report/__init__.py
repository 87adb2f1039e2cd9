"""``scaler report``: one self-contained HTML file of runs and suites to hand over.

Modules, one per concern: ``inputs`` (suite and run folders, the bench), ``html`` (building
blocks and the page), ``fmt`` (figures with intervals and condition badges), one module per
section (``machine``, ``claims``, ``study`` (the study's 2.04x for a planner), ``scaling``,
``throughput``, ``latency``, ``multistream``, ``prediction``, ``provenance``),
``extrapolate`` (the simulated machine, behind one function) and ``calibration`` (which
measured runs calibrate the simulator), and ``page`` (the order of the sections). Nothing
heavy is imported here: ``scaler --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

REPORT_FILE = "report.html"


def default_path(paths: list[str | Path]) -> Path:
    """Where a report goes without ``--out``: inside the one folder given; with several
    folders the user says where (their common parent may be far from all of them)."""
    from scaler.errors import UsageError

    if len(paths) != 1:
        raise UsageError("give --out FILE when reporting on several folders")
    path = Path(paths[0])
    return (path.parent if path.is_file() else path) / REPORT_FILE


def write_report(paths: list[str | Path], out: Path | None = None, bench: Path | None = None,
                 predict: object | None = None) -> tuple[Path, list[str]]:
    """Read the runs, build the report and write it atomically; returns its path and the
    problems met while drawing it (sections that could not be drawn say so in the page)."""
    from scaler.report.inputs import read_inputs
    from scaler.report.page import build
    from scaler.results import write_text_atomically

    target = Path(out) if out is not None else default_path(list(paths))
    if target.is_dir():
        target = target / REPORT_FILE
    inputs = read_inputs(list(paths), bench)
    text, problems = build(inputs, predict)  # type: ignore[arg-type]
    write_text_atomically(target, text)
    return target, problems
