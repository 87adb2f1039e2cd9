"""Hold-out validation: calibrate on some instance counts of a measured run, predict the rest.

The held-out groups are simulated on the layouts they really ran with (their recorded
partitions on the recorded host), so the error measures the model, not the planner.
"""

from __future__ import annotations

import statistics
from typing import Any

from scaler.errors import UsageError
from scaler.simulate.layout import recorded_layout
from scaler.simulate.machine import topology_from_dict
from scaler.simulate.model import calibrate
from scaler.simulate.sweep import simulate_closed

TARGET_ERROR = 0.10


def default_split(run: Any) -> tuple[int, ...]:
    """Instance counts to calibrate on: those up to one more than the host's cores, so the
    model sees every regime (whole machine, partitions, one shared CPU) and predicts the
    more crowded counts."""
    cores = run.doc["host"]["topology"]["cores"]
    ns = sorted({g["instances"] for g in run.doc["groups"]})
    return tuple(n for n in ns if n <= cores + 1)


def _measured(runs: list[Any]) -> dict[tuple[str, int, int], list[dict[str, Any]]]:
    """Complete measured groups of repeated runs by (placement, instances, batch)."""
    out: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for run in runs:
        for g in run.doc["groups"]:
            if g.get("status") == "complete" and g.get("throughput_ips") and \
                    not g.get("emulated") and not g.get("simulated"):
                out.setdefault((g["placement"], g["instances"], g["batch"]), []).append(g)
    return out


def validate(runs: list[Any], extra: list[Any], calibrate_on: tuple[int, ...] | None = None,
             queries: int = 200_000, seed: int = 0,
             given: dict[str, float] | None = None) -> tuple[dict[str, Any], Any]:
    """Calibrate on ``calibrate_on`` instance counts of ``runs`` (repeats of one experiment
    on one host) plus every group of ``extra`` runs, and predict every point of ``runs``;
    ``given`` parameter values replace calibrated or assumed ones.

    A point's measured figure is the median over the repeats; errors are
    predicted / measured − 1. Returns the report and the calibrated model.
    """
    hosts = {r.doc["host"].get("hostname") for r in runs}
    if len(hosts) > 1:
        raise UsageError(f"--validate runs come from different hosts: {', '.join(hosts)}")
    points_by = _measured(runs)
    ns = sorted({n for _, n, _ in points_by})
    cal = tuple(sorted(set(calibrate_on if calibrate_on is not None
                           else default_split(runs[0]))))
    held = [n for n in ns if n not in cal]
    if not held or not set(ns) & set(cal):
        raise UsageError(f"cannot split instance counts {', '.join(map(str, ns))} into "
                         f"calibration ({', '.join(map(str, cal))}) and held-out points: "
                         "choose others with --calibrate-on")
    extra_groups = {id(g) for r in extra for g in r.doc["groups"]}
    model = calibrate([*runs, *extra],
                      keep=lambda g: g["instances"] in cal or id(g) in extra_groups,
                      given=given)
    topo = topology_from_dict(runs[0].doc["host"]["topology"], str(runs[0].path))
    points = []
    for (placement, n, batch), groups in sorted(points_by.items()):
        sim = simulate_closed(model, recorded_layout(topo, groups[0]), batch, queries, seed + n)
        measured = statistics.median(g["throughput_ips"] for g in groups)
        p50s = [g["latency_ms"]["p50"] for g in groups if (g.get("latency_ms") or {}).get("p50")]
        points.append({
            "placement": placement, "instances": n, "batch": batch,
            "role": "calibration" if n in cal else "held out", "repeats": len(groups),
            "measured_ips": measured, "predicted_ips": sim["throughput_ips"],
            "error": sim["throughput_ips"] / measured - 1.0,
            "measured_p50_ms": statistics.median(p50s) if p50s else None,
            "predicted_p50_ms": sim["latency_ms"]["p50"],
        })
    errors = [abs(p["error"]) for p in points if p["role"] == "held out"]
    return {
        "runs": [str(r.path) for r in runs], "extra_runs": [str(r.path) for r in extra],
        "calibrated_on": list(cal), "held_out": held, "points": points,
        "held_out_error": {"mean_abs": sum(errors) / len(errors), "max_abs": max(errors),
                           "target": TARGET_ERROR, "within_target": max(errors) <= TARGET_ERROR},
        "instance_model": model.to_dict(),
    }, model


def lines(report: dict[str, Any]) -> list[str]:
    """The validation as a table, one row per point."""
    out = [f"validation of {', '.join(report['runs'])}",
           f"  calibrated on N = {', '.join(map(str, report['calibrated_on']))}"
           + (f" plus {', '.join(report['extra_runs'])}" if report["extra_runs"] else ""),
           "  measured: median over repeats; predicted: simulated on the recorded layout",
           f"  {'placement':<9} {'N':>3} {'role':<12} {'measured':>9} {'predicted':>9} "
           f"{'error':>7}  {'p50 meas':>8} {'p50 pred':>8}"]
    for p in report["points"]:
        p50m = p["measured_p50_ms"]
        out.append(f"  {p['placement']:<9} {p['instances']:>3} {p['role']:<12} "
                   f"{p['measured_ips']:>9.2f} {p['predicted_ips']:>9.2f} "
                   f"{p['error']:>+7.1%}  {'-' if p50m is None else f'{p50m:.1f}':>8} "
                   f"{p['predicted_p50_ms']:>8.1f}")
    e = report["held_out_error"]
    verdict = "within" if e["within_target"] else "NOT within"
    out.append(f"  held-out throughput error: mean {e['mean_abs']:.1%}, max {e['max_abs']:.1%} "
               f"({verdict} the {e['target']:.0%} target)")
    return out
