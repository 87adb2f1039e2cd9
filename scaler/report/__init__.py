"""``scaler report``: one self-contained HTML file of runs and suites to hand over.

Modules, one per concern: ``inputs`` (suite and run folders, the bench), ``html`` (building
blocks and the page), ``fmt`` (figures with intervals and condition badges), one module per
section (``machine``, ``claims``, ``scaling``, ``throughput``, ``latency``, ``multistream``,
``prediction``, ``provenance``), ``extrapolate`` (the simulated machine, behind one function)
and ``calibration`` (which measured runs calibrate the simulator), and ``page`` (the order of
the sections). Nothing heavy is imported here: ``scaler --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

REPORT_FILE = "report.html"


def default_path(paths: list[str | Path]) -> Path:
    """Where a report goes without ``--out``: inside the one folder given, else beside the
    folders given (their common parent)."""
    import os

    folders = [Path(p).parent if Path(p).is_file() else Path(p) for p in paths]
    if len(folders) == 1:
        return folders[0] / REPORT_FILE
    common = Path(os.path.commonpath([str(f.resolve()) for f in folders]))
    return common / REPORT_FILE


def write_report(paths: list[str | Path], out: Path | None = None, bench: Path | None = None,
                 predict: object | None = None) -> tuple[Path, list[str]]:
    """Read the runs, build the report and write it atomically; returns its path and the
    problems met while drawing it (sections that could not be drawn say so in the page)."""
    from scaler.report.inputs import read_inputs
    from scaler.report.page import build
    from scaler.results import write_text_atomically

    inputs = read_inputs(list(paths), bench)
    text, problems = build(inputs, predict)  # type: ignore[arg-type]
    target = Path(out) if out is not None else default_path(list(paths))
    if target.is_dir():
        target = target / REPORT_FILE
    write_text_atomically(target, text)
    return target, problems
