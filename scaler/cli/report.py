"""``scaler report`` and ``scaler export``: a self-contained HTML report to hand over, and tidy
tables for pandas and notebooks. Thin wrappers over ``scaler.report`` and ``scaler.export``;
matplotlib, numpy and pyarrow are imported inside the functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scaler.cli.common import emit_json, err, errors_to_exit

Runs = Annotated[list[str], typer.Argument(
    help="suite folders (written by `scaler suite`), run folders, or a mix")]
Json = Annotated[bool, typer.Option("--json", help="print what was written as JSON on stdout")]

# Paragraphs are single lines: typer's rich help keeps line breaks inside a paragraph.
REPORT_HELP = "\n\n".join([
    "One self-contained HTML file of runs and suites, to attach to a ticket.",
    "The machine (topology, ISA, host facts, measured peaks of make bench), the claims "
    "table of a suite, scaling curves with intervals and the oversubscribed region, latency "
    "distributions from the raw samples, the multistream search, noisy and emulated points "
    "marked, software versions and the commands that reproduce every run. With --machine, "
    "the simulated curves of another machine, the calibration's held-out error and every "
    "assumed parameter; in the study section, the study's bare metal, tuned bare metal and "
    "VMs simulated there from the --threading style terms, with the split among them.",
])
EXPORT_HELP = "\n\n".join([
    "Tidy tables of runs for pandas and notebooks (CSV, or Parquet with pyarrow).",
    "groups: one row per measured group (one repeat of a point); points: one row per figure "
    "across repeats; samples: one row per query, joined to groups on (run, group).",
])


def _assumptions(items: list[str]) -> dict[str, float]:
    from scaler.errors import UsageError

    given = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"bad --assume {item!r}: expected NAME=NUMBER, e.g. core_speed=0.8")
        given[name.strip()] = number
    return given


def _checked(given: dict[str, float]) -> dict[str, float]:
    """Model parameters known to the simulator and inside their bounds."""
    from scaler.simulate.model import check_given

    check_given(given)
    return given


def _check_placement(name: str) -> None:
    from scaler.errors import UsageError

    if name not in ("pinned", "vm"):
        raise UsageError(f"unknown --machine-placement {name!r}: choose pinned or vm")


def report(
    runs: Runs,
    out: Annotated[Path | None, typer.Option(
        "--out", help="HTML file to write (default: report.html in the one folder given)")]
    = None,
    machine: Annotated[str | None, typer.Option(
        "--machine", help="add the simulated curves of a named machine, e.g. 2s28c2t (the "
        "study's: 2 sockets, 28 cores each, 2 threads per core)")] = None,
    machine_instances: Annotated[str, typer.Option(
        "--machine-instances", help="instance counts to simulate on --machine")] = "1-8",
    machine_placement: Annotated[str | None, typer.Option(
        "--machine-placement", help="the placement simulated beside shared on --machine "
        "(pinned or vm; default: pinned, and vm in the study's section)")] = None,
    cores_per_instance: Annotated[int | None, typer.Option(
        "--cores-per-instance", metavar="K", help="--machine: fixed-size instances of K "
        "cores (2K vCPUs with --smt; the study's VMs: 6 with --smt) instead of the machine "
        "shared out evenly")] = None,
    smt: Annotated[bool, typer.Option(
        "--smt", help="--machine: give pinned and vm instances both SMT siblings")] = False,
    assume: Annotated[list[str] | None, typer.Option(
        "--assume", help="set a model parameter of the prediction, NAME=VALUE (e.g. "
        "core_speed=0.8)")] = None,
    queries: Annotated[int, typer.Option(
        "--queries", help="simulated queries per point of the prediction")] = 50_000,
    bench: Annotated[Path | None, typer.Option(
        "--bench", help="bench.json to show the measured peaks of (default: bench/bench.json "
        "beside the folders, or results/bench/bench.json)")] = None,
    json: Json = False,
) -> None:
    """The ``report`` command; its help is ``REPORT_HELP``."""
    with errors_to_exit():
        from scaler.report import write_report
        from scaler.report.page import Prediction
        from scaler.settings import check_positive, parse_instances

        predict = None
        if machine is not None:  # every bad option is refused before any work
            from scaler.simulate.machine import parse_machine

            parse_machine(machine)
            check_positive("--queries", queries)
            if cores_per_instance is not None:
                check_positive("--cores-per-instance", cores_per_instance, at_most=1 << 16)
            if machine_placement is not None:
                _check_placement(machine_placement)
            predict = Prediction(machine, parse_instances(machine_instances),
                                 _checked(_assumptions(assume or [])), queries,
                                 machine_placement, cores_per_instance, smt)
        path, problems = write_report(runs, out, bench, predict)
        for line in problems:
            err(f"scaler: warning: report: {line}")
        if json:
            emit_json({"report": str(path), "problems": problems})
        else:
            typer.echo(f"report: {path}")


def export(
    runs: Runs,
    out: Annotated[Path, typer.Option("--out", help="folder to write the tables into")],
    fmt: Annotated[str, typer.Option(
        "--format", help="csv, or parquet (needs pyarrow)")] = "csv",
    json: Json = False,
) -> None:
    """The ``export`` command; its help is ``EXPORT_HELP``."""
    with errors_to_exit():
        from scaler import export as export_mod
        from scaler.results import find_runs

        if fmt not in export_mod.FORMATS:
            from scaler.errors import UsageError

            raise UsageError(f"unknown --format {fmt!r}: choose from "
                             f"{', '.join(export_mod.FORMATS)}")
        if fmt == "parquet":
            export_mod.check_parquet()
        written = export_mod.export(find_runs(runs), out, fmt)
        if json:
            emit_json(written)
        else:
            typer.echo("\n".join(f"{name}: {w['path']} ({w['rows']:,} rows)"
                                 for name, w in written.items()))
