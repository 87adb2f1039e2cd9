"""``scaler show`` and ``scaler plot``: read run folders, print summaries, draw figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scaler.cli.common import emit_json, err, errors_to_exit, reading_runs

Runs = Annotated[list[str], typer.Argument(help="run folders (or suite folders holding them)")]


def show(runs: Runs, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the summary of runs."""
    with errors_to_exit(), reading_runs(runs):
        from scaler import results, summaries

        loaded = results.find_runs(runs)
        docs = [summaries.summarize(r.doc, str(r.path)) for r in loaded]
        if json:
            emit_json(docs[0] if len(docs) == 1 else docs)
            return
        from scaler.speedprobe import window_lines

        for d, r in zip(docs, loaded):
            typer.echo("\n".join(summaries.lines(d) + window_lines(r.doc)))


def plot(runs: Runs,
         format: Annotated[str, typer.Option("--format", help="png, svg, pdf (comma-separated)")]
         = "png",
         out: Annotated[Path | None, typer.Option(
             "--out", help="folder for the figures (default: the first run's folder)")] = None,
         allow_emulated: Annotated[bool, typer.Option(
             "--allow-emulated", help="draw emulated series beside real ones, labelled")]
         = False,
         label: Annotated[list[str] | None, typer.Option(
             "--label", help="a label per run, in order (default: what differs between "
             "them: engine, model, machine, date)")] = None) -> None:
    """Draw scaling curves, latency percentiles and multistream searches of runs."""
    with errors_to_exit(), reading_runs(runs):
        from scaler import plots, results, runfolders

        formats = plots.parse_formats(format)
        from scaler.runsets import without_null

        loaded = without_null(results.find_runs(runs), "plot", err)
        folder = runfolders.check_output_dir(out) if out else loaded[0].path
        from scaler import runstate

        runstate.correct_stale(folder, 0)  # a run folder left "running": say it is partial
        written = plots.save_figures(plots.figures_for(loaded, allow_emulated, label), folder,
                                     formats)
        if not written:
            err("scaler: nothing to plot in these runs")
        for path in written:
            typer.echo(str(path))


def compare(a: Annotated[str, typer.Argument(help="run A (or a suite folder)")],
            b: Annotated[str, typer.Argument(help="run B (or a suite folder)")],
            json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """B over A at every point measured in both: ratio, 95% interval, Welch's p-value across
    repeats, and "~" when there is no measurable difference."""
    with errors_to_exit(), reading_runs([a, b]):
        from scaler import compare as compare_mod
        from scaler import results

        result = compare_mod.compare_runs(results.find_runs([a]), results.find_runs([b]))
        if json:
            emit_json(result)
            return
        typer.echo("\n".join(compare_mod.lines(result)))
