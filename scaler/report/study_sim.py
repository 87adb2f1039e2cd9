"""The study section's simulated part (``scaler report ... --machine 2s28c2t``): the study's
bare metal, tuned bare metal and VMs simulated on the named machine, from the simulator's
``--threading`` style terms calibrated on this machine's runs of the styles.

Calibration: the newest measured run that holds groups of a style other than ``tuned`` (the
suite's ``scaling-model-zoo``) anchors it, with every measured run of the same host and kind
(engine, precision, model): the base model on their ``tuned`` groups, the style terms
(stacked binding, spin) on the others (``stylecheck.calibrate_styled``). Simulated: shared
and ``placement`` (vm by default: the study's VMs) over 1..8 instances, under ``model-zoo``
(the study's launcher, on bare metal and inside each VM) and under ``tuned``, by the model's
closed form (``explain.explain_ratio``: exact for the model, no sampling noise). The N=8
ratio under ``model-zoo`` is split among the terms, each with its value, interval and source.
When the terms cannot be calibrated, :func:`simulate` says why in one line instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.report.fmt import num
from scaler.report.html import badge, esc, note, table
from scaler.results import Run

STYLE = "model-zoo"  # suite_study.STYLE (kept light to import)
INSTANCES = tuple(range(1, 9))


def _kind(run: Run) -> tuple[Any, ...]:
    e = run.doc.get("effective", {})
    return (e.get("engine"), e.get("precision"), e.get("model"),
            run.doc.get("host", {}).get("hostname"))


def calibration(runs: list[Run]) -> list[Run]:
    """The runs the style terms calibrate on: the newest measured run holding a styled group
    and every measured run of its host and kind; [] when no run holds one."""
    from scaler.simulate.stylecheck import styled

    measured = [r for r in runs if not r.doc.get("simulated")]
    anchors = [r for r in measured if styled([r])]
    if not anchors:
        return []
    anchor = max(anchors, key=lambda r: str(r.doc.get("created", "")))
    return [r for r in measured if _kind(r) == _kind(anchor)]


def simulate(runs: list[Run], machine: str, instances: tuple[int, ...] = INSTANCES,
             given: dict[str, float] | None = None, cores_per_instance: int | None = None,
             smt: bool = False, placement: str = "vm") -> dict[str, Any]:
    """``{"refused": why}`` when the style terms cannot be calibrated on ``runs``; else the
    curves (images/s per N) of shared and ``placement`` under ``model-zoo`` and ``tuned`` on
    ``machine``, the ratio at the largest N under each style (``placement`` over shared, both
    under the style: the study's VMs ran the launcher inside too), and the split of the
    ``model-zoo`` ratio among the terms (``explain.explain_ratio``)."""
    from scaler.simulate.explain import STUDY, explain_ratio
    from scaler.simulate.machine import load_machine
    from scaler.simulate.stylecheck import calibrate_styled
    from scaler.simulate.terms import check_style

    cal = calibration(runs)
    if not cal:
        return {"refused": f"no run among the inputs measured a --threading style other than "
                           f"tuned (scaler suite's scaling-model-zoo, or scaler scaling "
                           f"--threading tuned,{STYLE}): the style terms cannot be calibrated, "
                           f"so the study's bare metal is not simulated on {machine}"}
    try:
        base, terms = calibrate_styled(cal, given=given)
        check_style(terms, STYLE)
    except UsageError as exc:
        return {"refused": f"the style terms cannot be calibrated on "
                           f"{', '.join(r.path.name for r in cal)}: {exc}"}
    topo, source = load_machine(machine, None, None, None)
    instances = tuple(sorted(instances))
    study = STUDY if cores_per_instance and STUDY["instances"] == max(instances) else None
    args = (base, topo, placement, "shared", instances, cores_per_instance, smt)
    zoo = explain_ratio(*args, study=study, style=STYLE, terms=terms)
    tuned = explain_ratio(*args, study=study)
    curves = {f"shared-{STYLE}": zoo["curves"]["shared"], "shared-tuned": tuned["curves"]["shared"],
              f"{placement}-{STYLE}": zoo["curves"][placement],
              f"{placement}-tuned": tuned["curves"][placement]}
    return {"machine": machine, "machine_source": source, "placement": placement,
            "cores_per_instance": cores_per_instance, "smt": smt,
            "calibration_runs": [str(r.path) for r in cal], "instances": list(instances),
            "at": zoo["at"], "curves": curves,
            "over_study": zoo["ratio_at"], "over_tuned": tuned["ratio_at"],
            "layouts_alone": zoo["ratio_without_terms"],
            "layout_share": zoo["layout_share_of_ratio"], "terms": zoo["terms"],
            "inactive": zoo["inactive_terms"], "study": study}


def panel(sim: dict[str, Any]) -> dict[str, Any]:
    """The simulated curves as a panel of ``plot_study.study_figure``."""
    p = sim["placement"]
    kinds = {f"shared-{STYLE}": "study", "shared-tuned": "tuned", f"{p}-{STYLE}": "vm",
             f"{p}-tuned": "pinned" if p == "pinned" else "vm"}
    return {"title": f"simulated on {sim['machine']} (model, no interval)",
            "curves": [{"label": name, "kind": kinds[name], "tuned": name.endswith("-tuned"),
                        "points": {int(n): v for n, v in c.items()}}
                       for name, c in sim["curves"].items()]}


def _interval(ci: list[float] | None) -> str:
    return f"[{num(ci[0])}, {num(ci[1])}]" if ci else "-"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def html(sim: dict[str, Any] | None) -> str:
    """The simulated part: its one line, the split among the terms, or why it is missing."""
    if sim is None:
        return note("Not simulated: <code>scaler report RUN... --machine 2s28c2t "
                    "--cores-per-instance 6 --smt</code> adds the study's bare metal, tuned bare "
                    "metal and VMs simulated on the study's server.")
    if "refused" in sim:
        return note(badge("partial", "not simulated") + " " + esc(sim["refused"]) + ".")
    p, n = sim["placement"], sim["at"]
    size = (f"{sim['cores_per_instance']} cores{' with SMT siblings' if sim['smt'] else ''} "
            "each" if sim["cores_per_instance"] else "the machine shared out evenly")
    line = (f"Simulated on {sim['machine']} at N={n}: {p} over the study's bare metal "
            f"{sim['over_study']:.2f}x; over tuned bare metal {sim['over_tuned']:.2f}x")
    out = [f"<h3>Simulated on {esc(sim['machine'])}</h3>",
           f"<p>{badge('simulated', 'simulated')} <b>{esc(line)}</b> <small>(model figures "
           f"without an interval of their own; {esc(p)} instances: {esc(size)}; each ratio "
           f"with both sides under the same style; calibrated on "
           f"{esc(', '.join(Path(r).name for r in sim['calibration_runs']))})</small></p>"]
    if sim["study"]:
        out.append(note(esc(f"The study measured {sim['study']['ratio']:.2f}x at "
                            f"N={sim['study']['instances']}.")))
    rows = [["the layouts alone (every term off)", "-", "-", "-",
             esc(f"{sim['layouts_alone']:.2f}x with no term"), _share(sim["layout_share"])]]
    rows += [[f"<code>{esc(t['name'])}</code>", num(t["value"]), _interval(t["interval_95"]),
              badge({"measured": "ok", "given": "simulated"}.get(t["source"], "partial"),
                    t["source"]), esc(t["from"]), _share(t["share_of_ratio"])]
             for t in sim["terms"]]
    out.append(table(["term", "value", "95% interval", "source", "where it comes from",
                      f"share of log({p}/shared) at N={n}"], rows, numeric=(1, 5)))
    idle = ", ".join(f"{t['name']}={t['value']:g} ({t['source']})" for t in sim["inactive"])
    out.append(note(f"The split of the {esc(STYLE)} ratio among the terms (Shapley shares of "
                    "its log; the shares add up to 100%)."
                    + (f" At their neutral value, explaining nothing: {esc(idle)}." if idle
                       else "")))
    return "\n".join(out)
