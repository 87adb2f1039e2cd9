"""Hold-out validation of the ``--threading`` style terms: calibrate on some instance counts
of runs of several styles, predict the others of each style.

The base model is calibrated on the ``tuned`` groups at the calibration counts (plus every
group of the extra runs), the style terms (``terms.calibrate_terms``) on the other styles'
groups at those counts; every point of every style is then predicted on the layout it ran
with (its read-back binding) by the model's closed form (the mean the closed-loop kernel
converges to, free of sampling noise), and the held-out error is reported per style.
"""

from __future__ import annotations

import statistics
from typing import Any

from scaler.errors import UsageError
from scaler.simulate.layout import recorded_layout
from scaler.simulate.machine import topology_from_dict
from scaler.simulate.model import InstanceModel, calibrate, closed_form_ips, virtualized
from scaler.simulate.terms import (
    TERMS,
    StyleTerms,
    calibrate_terms,
    check_terms_given,
    is_tuned,
    measured_layout,
    predict_ips,
    style_of,
)
from scaler.simulate.validate import TARGET_ERROR, default_split, host_of


def styled(runs: list[Any]) -> bool:
    """Whether any measured group of ``runs`` ran a style other than ``tuned``."""
    return any(not is_tuned(g) for r in runs for g in r.doc.get("groups", []))


def calibrate_styled(runs: list[Any], keep: Any = None, given: dict[str, float] | None = None,
                     windows: dict[str, Any] | None = None
                     ) -> tuple[InstanceModel, StyleTerms]:
    """The base model on the ``tuned`` groups of ``runs`` and the style terms on the others
    (both restricted to the groups ``keep`` accepts); ``windows``: an ``ort_spin``
    measurement of the runtime's spin windows."""
    def base_keep(g: dict[str, Any]) -> bool:
        return is_tuned(g) and (keep is None or keep(g))

    if not any(base_keep(g) for r in runs for g in r.doc.get("groups", [])):
        raise UsageError("the runs hold no tuned group to calibrate the base model on "
                         "(measure the styles together: --threading tuned,model-zoo)")
    given = dict(given or {})
    check_terms_given(given)
    base = calibrate(runs, keep=base_keep,
                     given={k: v for k, v in given.items() if k not in TERMS})
    return base, calibrate_terms(runs, base, keep, given, windows)


def predict_group(topo: Any, group: dict[str, Any], base: InstanceModel,
                  terms: StyleTerms) -> float:
    """Images/s of a measured group under the model, on the layout it ran with."""
    vm = virtualized(group["placement"])
    if is_tuned(group):
        return closed_form_ips(recorded_layout(topo, group), base.values, group["batch"], vm)
    layout, bound = measured_layout(topo, group)
    return predict_ips(base.values, terms, layout, bound, style_of(group), group["batch"], vm)


def validate_styles(runs: list[Any], extra: list[Any], calibrate_on: tuple[int, ...] | None,
                    given: dict[str, float] | None = None,
                    windows: dict[str, Any] | None = None
                    ) -> tuple[dict[str, Any], InstanceModel, StyleTerms]:
    """Calibrate on ``calibrate_on`` instance counts (default: up to cores + 1) of ``runs``
    plus every group of ``extra``; predict every point of every style of ``runs``."""
    hosts = {host_of(r) for r in runs}
    if len(hosts) > 1:
        raise UsageError("--validate runs come from different hosts: "
                         + "; ".join(sorted(hosts)))
    points_by: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for run in runs:
        for g in run.doc["groups"]:
            if g.get("status") == "complete" and g.get("throughput_ips") and \
                    not g.get("emulated") and not g.get("simulated"):
                key = (style_of(g), g["placement"], g["instances"], g["batch"])
                points_by.setdefault(key, []).append(g)
    ns = sorted({k[2] for k in points_by})
    cal = tuple(sorted(set(calibrate_on if calibrate_on is not None else default_split(runs))))
    held = [n for n in ns if n not in cal]
    if not held or not set(ns) & set(cal):
        raise UsageError(f"cannot split instance counts {', '.join(map(str, ns))} into "
                         f"calibration ({', '.join(map(str, cal))}) and held-out points: "
                         "choose others with --calibrate-on")
    extra_ids = {id(g) for r in extra for g in r.doc["groups"]}
    base, terms = calibrate_styled(
        [*runs, *extra], keep=lambda g: g["instances"] in cal or id(g) in extra_ids,
        given=given, windows=windows)
    topo = topology_from_dict(runs[0].doc["host"]["topology"], str(runs[0].path))
    points = []
    for (style, placement, n, batch), groups in sorted(points_by.items()):
        predicted = statistics.median(predict_group(topo, g, base, terms) for g in groups)
        measured = statistics.median(g["throughput_ips"] for g in groups)
        points.append({"threading": style, "placement": placement, "instances": n,
                       "batch": batch, "role": "calibration" if n in cal else "held out",
                       "repeats": len(groups), "measured_ips": measured,
                       "predicted_ips": predicted, "error": predicted / measured - 1.0})
    by_style = {}
    for style in sorted({p["threading"] for p in points}):
        errors = [abs(p["error"]) for p in points
                  if p["threading"] == style and p["role"] == "held out"]
        if errors:
            mean = sum(errors) / len(errors)
            by_style[style] = {"mean_abs": mean, "max_abs": max(errors), "points": len(errors),
                               "target": TARGET_ERROR, "within_target": mean <= TARGET_ERROR}
    return {"runs": [str(r.path) for r in runs], "extra_runs": [str(r.path) for r in extra],
            "calibrated_on": list(cal), "held_out": held, "points": points,
            "held_out_error_by_style": by_style, "instance_model": base.to_dict(),
            "style_terms": terms.to_dict()}, base, terms


def lines(report: dict[str, Any]) -> list[str]:
    """The validation as a table, one row per (style, placement, N), then the held-out
    error of each style."""
    out = [f"validation of the --threading styles in {', '.join(report['runs'])}",
           f"  calibrated on N = {', '.join(map(str, report['calibrated_on']))}"
           + (f" plus {', '.join(report['extra_runs'])}" if report["extra_runs"] else ""),
           "  measured: median over repeats; predicted: model closed form on the layout each "
           "group ran with (its read-back binding)",
           f"  {'threading':<10} {'placement':<9} {'N':>3} {'role':<12} {'measured':>9} "
           f"{'predicted':>9} {'error':>7}"]
    for p in report["points"]:
        out.append(f"  {p['threading']:<10} {p['placement']:<9} {p['instances']:>3} "
                   f"{p['role']:<12} {p['measured_ips']:>9.2f} {p['predicted_ips']:>9.2f} "
                   f"{p['error']:>+7.1%}")
    for style, e in report["held_out_error_by_style"].items():
        verdict = "within" if e["within_target"] else "NOT within"
        out.append(f"  held-out error, {style}: mean {e['mean_abs']:.1%}, max "
                   f"{e['max_abs']:.1%} over {e['points']} point(s) ({verdict} the "
                   f"{e['target']:.0%} target on the mean)")
    return out
