"""``scaler simulate --scenario server``: the simulated server run saved, plotted and printed,
and its held-out validation against a measured server run (the CLI's side of
``scaler.simulate.serve``, which computes and never prints)."""

from __future__ import annotations

from typing import Any

from scaler.simulate.serve import (
    ServeSettings,
    check_settings,
    no_server_runs,
    run_document,
    server_groups,
)
from scaler.simulate.serve_validate import lines, validate


def command(calibration: list[Any], given: dict[str, float], machine: str | None,
            topology: str | None, sysfs_root: str | None, counts: tuple[int, ...],
            placements: tuple[str, ...], smt: bool, settings: ServeSettings, find_peak: bool,
            out: Any, as_json: bool) -> None:
    """``scaler simulate --scenario server``: the simulated run, saved, plotted, printed."""
    import typer

    from scaler import plots, results, summaries
    from scaler.cli.common import emit_json, err
    from scaler.simulate.machine import load_machine
    from scaler.simulate.model import calibrate, parameter_lines
    from scaler.simulate.sweep import save

    check_settings(settings)
    no_server_runs(calibration)
    model = calibrate(calibration).with_given(given)
    topo, source = load_machine(machine, topology, sysfs_root,
                                calibration[0].doc["host"]["topology"],
                                calibration[0].doc["host"].get("hostname", ""))
    run, searches = server_groups(model, topo, placements, counts, settings, smt, find_peak)
    requested = {"scenario": "server", "placements": list(placements),
                 "instances": list(counts), "smt": smt, "find_peak": find_peak,
                 **{k: getattr(settings, k) for k in ServeSettings.__dataclass_fields__},
                 "serve_max_batch": settings.max_batch, "machine": source,
                 "calibration_runs": [str(r.path) for r in calibration], "assume": given}
    doc = run_document(run, topo, source, requested)
    doc["searches"] = searches
    path, summary = save(doc, out)
    if plots.automatic():
        try:
            plots.save_figures(plots.figures_for([results.load_run(path)]), path)
        except Exception as exc:  # a plot must never cost the result
            err(f"scaler: warning: plots of {path} failed: {exc}")
    if as_json:
        emit_json({**summary, "searches": searches, "model_parameters": {
            k: {"value": model.values[k], "source": model.sources[k]} for k in model.values}})
        return
    err("\n".join(parameter_lines(model)))
    typer.echo("\n".join(summaries.lines(summary)))
    for layout, s in searches.items():
        if s["peak_qps"] is not None:
            typer.echo(f"  search {layout}: peak {s['peak_qps']:g} qps, first failing "
                       f"{s['first_failing_qps'] if s['first_failing_qps'] else 'none'} "
                       f"(from {s['start_qps']:g} qps, {len(s['probes'])} probes)")


def validate_command(measured: list[Any], calibration: list[Any], queries: int | None,
                     given: dict[str, float], out: Any, as_json: bool) -> None:
    """``scaler simulate CAL --scenario server --validate SERVER_RUN``: the held-out error
    of the peak rate; the replayed simulated run is saved beside the others."""
    import typer

    from scaler.cli.common import emit_json, err
    from scaler.simulate.model import parameter_lines
    from scaler.simulate.sweep import save

    report, model, replays = validate(measured, calibration, queries, given)
    from scaler.simulate.machine import topology_from_dict

    saved = []
    for m, run in replays:
        topo = topology_from_dict(m.doc["host"]["topology"], str(m.path))
        requested = {"scenario": "server", "validates": str(m.path),
                     **{k: getattr(run.settings, k) for k in ServeSettings.__dataclass_fields__},
                     "serve_max_batch": run.settings.max_batch,
                     "calibration_runs": [str(r.path) for r in calibration], "assume": given}
        doc = run_document(run, topo, f"the measured run's host ({m.path})", requested)
        doc["validation"] = report
        path, _ = save(doc, out)
        saved.append(str(path))
    report["simulated_runs"] = saved
    if as_json:
        emit_json(report)
        return
    typer.echo("\n".join(lines(report)))
    typer.echo("  simulated replay: " + ", ".join(saved))
    err("\n".join(parameter_lines(model)))
