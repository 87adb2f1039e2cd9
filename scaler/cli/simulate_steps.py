"""The steps of ``scaler simulate`` after its options are checked: hold-out validation
(``validate_runs``) and a simulated sweep with its explanation (``simulate_runs``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from scaler.cli.common import emit_json, err


def validate_runs(runs: list[Any], extra: list[Any], calibrate_on: str | None,
                  queries: int | None, seed: int, given: dict[str, float], as_json: bool,
                  windows: dict[str, Any] | None = None) -> None:
    """Hold-out validation: per ``--threading`` style when the runs hold several."""
    from scaler.settings import parse_instances
    from scaler.simulate import stylecheck, validate

    split = parse_instances(calibrate_on) if calibrate_on else None
    if stylecheck.styled([*runs, *extra]):  # runs of several --threading styles
        report, model, terms = stylecheck.validate_styles(runs, extra, split, given, windows)
        if as_json:
            emit_json(report)
            return
        from scaler.simulate.model import parameter_lines
        from scaler.simulate.terms import term_lines

        typer.echo("\n".join(stylecheck.lines(report)))
        err("\n".join(parameter_lines(model)))
        for style in sorted(terms.instances):
            if style != "tuned":
                err("\n".join(term_lines(terms, style)))
        return
    report, model = validate.validate(runs, extra, split, queries or 200_000, seed, given)
    if as_json:
        emit_json(report)
    else:
        from scaler.simulate.model import parameter_lines

        typer.echo("\n".join(validate.lines(report)))
        err("\n".join(parameter_lines(model)))


def simulate_runs(calibration: list[Any], given: dict[str, float], machine: str | None,
                  topology: str | None, sysfs_root: str | None, scenario: str,
                  counts: tuple[int, ...], placements: tuple[str, ...], smt: bool,
                  bound: float, stat: str, fps: float | None, max_batch: int,
                  queries: int | None, seed: int, out: Path, as_json: bool,
                  cores_per_instance: int | None = None, oversubscribe: bool = False,
                  style: str = "tuned", windows: dict[str, Any] | None = None) -> None:
    """Calibrate (the base model and, with styled runs, the style terms), simulate the
    sweep under ``style``, save it, and print it with the split of its ratio."""
    from scaler import plots, results, summaries
    from scaler.simulate import stylecheck, sweep
    from scaler.simulate.machine import load_machine
    from scaler.simulate.model import calibrate, parameter_lines
    from scaler.simulate.terms import check_style, term_lines

    terms = None
    if stylecheck.styled(calibration):  # the base model on the tuned groups alone
        model, terms = stylecheck.calibrate_styled(calibration, given=given, windows=windows)
        check_style(terms, style)
    elif style != "tuned":
        from scaler.errors import UsageError

        raise UsageError(f"--threading {style}: the calibration runs hold no {style} group "
                         f"to take its spin and stacking from (measure e.g. `scaler scaling "
                         f"--threading tuned,{style} --placement shared,pinned`)")
    else:
        model = calibrate(calibration, given=given)
    topo, source = load_machine(machine, topology, sysfs_root,
                                calibration[0].doc["host"]["topology"],
                                calibration[0].doc["host"].get("hostname", ""))
    interval = 1000.0 / (fps or 1000.0 / bound)
    explanations = []
    if scenario == "scaling":
        groups = sweep.scaling_groups(model, topo, placements, counts, smt,
                                      queries or 200_000, seed, cores_per_instance,
                                      oversubscribe, style, terms)
        explanations = _explain(model, topo, placements, counts, smt, cores_per_instance,
                                oversubscribe, style, terms)
    else:
        groups = sweep.multistream_groups(model, topo, counts, bound, stat, interval,
                                          max_batch, smt, queries or 20_000, seed,
                                          placements[0], cores_per_instance)
    requested = {"scenario": scenario, "placements": list(placements),
                 "instances": list(counts), "smt": smt,
                 "cores_per_instance": cores_per_instance, "oversubscribe": oversubscribe,
                 "latency_bound_ms": bound,
                 "stat": stat, "frame_interval_ms": interval, "max_batch": max_batch,
                 "queries": queries, "seed": seed, "machine": source,
                 "calibration_runs": [str(r.path) for r in calibration], "assume": given,
                 "threading": style}
    doc = sweep.run_document(scenario, model, topo, source, requested, groups)
    if terms is not None:
        doc["style_terms"] = terms.to_dict()
    if explanations:
        doc["explanations"] = explanations
    path, summary = sweep.save(doc, out)
    if plots.automatic():
        try:
            plots.save_figures(plots.figures_for([results.load_run(path)]), path)
        except Exception as exc:  # a plot must never cost the result
            err(f"scaler: warning: plots of {path} failed: {exc}")
    if as_json:
        emit_json({**summary, "model_parameters": {
            k: {"value": model.values[k], "source": model.sources[k]} for k in model.values},
            "explanations": explanations,
            **({"style_terms": terms.to_dict()} if terms is not None else {})})
        return
    err("\n".join(parameter_lines(model)))
    if terms is not None and style != "tuned":
        err("\n".join(term_lines(terms, style)))
    typer.echo("\n".join(summaries.lines(summary)))
    if explanations:
        from scaler.simulate import explain

        for x in explanations:
            typer.echo("\n".join(explain.lines(x)))


def _explain(model: Any, topo: Any, names: tuple[str, ...], counts: tuple[int, ...],
             smt: bool, cores_per_instance: int | None, oversubscribe: bool,
             style: str = "tuned", terms: Any = None) -> list[dict[str, Any]]:
    """Each placement against the baseline (bare metal) at the largest N, split by term."""
    from scaler.placements import baseline
    from scaler.simulate.explain import STUDY, explain_ratio

    base = baseline()
    if base not in names:
        return []
    # the study's figure is a yardstick only for its own experiment: fixed-size instances
    # against the baseline, at its N
    study = STUDY if cores_per_instance and STUDY["instances"] == max(counts) else None
    return [explain_ratio(model, topo, name, base, counts, cores_per_instance, smt,
                          oversubscribe=oversubscribe, study=study, style=style, terms=terms)
            for name in names if name != base]
