"""The report page: the header and every section, in the order a reader needs them.

Every section is always present (saying so when the inputs hold nothing for it), so a reader
and the browser test find the same structure whatever was measured. A section that fails to
draw says why in its place and the rest of the report still comes out: a report must never
cost what was measured.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field

from scaler.errors import UsageError
from scaler.report import (
    claims,
    latency,
    machine,
    multistream,
    prediction,
    provenance,
    scaling,
    study,
    throughput,
)
from scaler.report.html import badge, esc, note, page
from scaler.report.inputs import Inputs

SECTION_IDS = ("machine", "claims", "study", "scaling", "throughput", "latency", "multistream",
               "prediction", "provenance")


@dataclass(frozen=True)
class Prediction:
    """What ``--machine`` asks for."""

    machine: str
    instances: tuple[int, ...]
    given: dict[str, float] = field(default_factory=dict)
    queries: int = 50_000
    # beside shared; None: pinned in the prediction section, vm (the study's) in the study's
    placement: str | None = None
    cores_per_instance: int | None = None
    smt: bool = False


def _header(inputs: Inputs) -> list[str]:
    from importlib import metadata

    try:
        version = metadata.version("scaler")
    except metadata.PackageNotFoundError:
        version = "?"
    stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    kinds = sorted({f"{r.doc['effective'].get('model')}" for r in inputs.runs})
    given = [str(s.path) for s in inputs.suites] or [str(r.path) for r in inputs.runs[:3]]
    marks = " ".join([badge("noisy"), badge("unstable"), badge("oversub", "oversubscribed"),
                      badge("emulated"), badge("simulated")])
    partial = [r for r in inputs.runs if r.doc.get("status") != "complete"]
    warn = ([badge("partial", f"{len(partial)} run(s) not complete") + " " + esc(", ".join(
        inputs.experiment(r) for r in partial)) + ": their reasons are under provenance"]
        if partial else [])
    return [
        f"{len(inputs.runs)} run(s) of {esc(', '.join(kinds))} on "
        f"{esc(', '.join(inputs.hosts()))}; written {esc(stamp)} by scaler {esc(version)}",
        "From: " + esc(", ".join(given)) + (" ..." if not inputs.suites and
                                            len(inputs.runs) > 3 else ""),
        "Figures are medians across repeats (each in fresh processes) with 95% intervals; a "
        "ratio whose interval includes 1 is no measurable difference. Marks: " + marks,
        *warn,
    ]


def _safe(draw: Callable[[], str], what: str, problems: list[str]) -> str:
    try:
        return draw()
    except Exception as exc:  # one bad section must not cost the report
        problems.append(f"{what}: {type(exc).__name__}: {exc}")
        return note(badge("failed", "not drawn") + f" {esc(type(exc).__name__)}: {esc(exc)}")


def _study_sim(inputs: Inputs, predict: Prediction | None, problems: list[str]
               ) -> dict | None:
    """The study section's simulated part on ``--machine`` (vm beside shared, as the study
    ran, unless ``--machine-placement`` names another), None when no machine was asked for;
    a failure is the part's one line (and a problem), so the section's measurements still
    come out."""
    if predict is None:
        return None
    from scaler.report.study_sim import simulate

    try:
        return simulate(inputs.measured(), predict.machine, predict.instances, predict.given,
                        predict.cores_per_instance, predict.smt, predict.placement or "vm")
    except Exception as exc:  # the measured part of the section must not cost it
        problems.append(f"study: simulation: {type(exc).__name__}: {exc}")
        return {"refused": f"the simulation failed: {type(exc).__name__}: {exc}"}


def build(inputs: Inputs, predict: Prediction | None = None) -> tuple[str, list[str]]:
    """The report's HTML and the problems met while drawing it (one line each)."""
    problems: list[str] = []
    result, error = None, None
    if predict is not None:
        from scaler.report.extrapolate import extrapolate

        try:
            result = extrapolate(inputs.measured(), predict.machine, predict.instances,
                                 predict.given, predict.queries, 0, predict.placement or "pinned",
                                 predict.cores_per_instance, predict.smt)
        except UsageError as exc:
            error = f"cannot calibrate on these runs: {exc}"
            problems.append(f"prediction: {error}")
    sections = [
        ("machine", machine.TITLE, lambda: machine.section(inputs)),
        ("claims", claims.TITLE, lambda: claims.section(inputs)),
        ("study", study.TITLE, lambda: study.section(inputs, _study_sim(inputs, predict,
                                                                     problems))),
        ("scaling", scaling.TITLE, lambda: scaling.section(inputs)),
        ("throughput", throughput.TITLE, lambda: throughput.section(inputs)),
        ("latency", latency.TITLE, lambda: latency.section(inputs)),
        ("multistream", multistream.TITLE, lambda: multistream.section(inputs)),
        ("prediction", prediction.TITLE
         + (f": {predict.machine}" if predict is not None else ""),
         lambda: prediction.section(result, error)),
        ("provenance", provenance.TITLE, lambda: provenance.section(inputs)),
    ]
    drawn = [(sid, title, _safe(draw, sid, problems)) for sid, title, draw in sections]
    return page("scaler report", _header(inputs), drawn), problems
