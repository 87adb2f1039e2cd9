"""Hold-out validation: calibrate on some instance counts of a measured run, predict the rest.

The held-out groups are simulated on the layouts they really ran with (their recorded
partitions on the recorded host), so the error measures the model, not the planner.

``reference_sets`` finds the committed runs of real machines under ``results/reference``
(each folder: one scaling experiment, as one run, repeats of it or one run per group and
repeat, plus latency runs of the same host that are calibrated on in full); the validation
tests and ``make bench`` validate on them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.simulate.layout import recorded_layout
from scaler.simulate.machine import topology_from_dict
from scaler.simulate.model import calibrate
from scaler.simulate.sweep import simulate_closed

TARGET_ERROR = 0.10


def default_split(runs: list[Any]) -> tuple[int, ...]:
    """Instance counts to calibrate on: those up to one more than the host's cores, so the
    model sees every regime (whole machine, partitions, one shared CPU) and predicts the
    more crowded counts. The counts are those of all ``runs`` together (one run per group
    holds one count)."""
    cores = runs[0].doc["host"]["topology"]["cores"]
    ns = sorted({g["instances"] for run in runs for g in run.doc["groups"]})
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
    hosts = {host_of(r) for r in runs}
    if len(hosts) > 1:
        raise UsageError("--validate runs come from different hosts: "
                         + "; ".join(sorted(hosts)))
    points_by = _measured(runs)
    ns = sorted({n for _, n, _ in points_by})
    cal = tuple(sorted(set(calibrate_on if calibrate_on is not None
                           else default_split(runs))))
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


def host_of(run: Any) -> str:
    """A host's identity as runs record it: the hostname alone is not one (cloud VMs are
    often all called ``vm``), so its CPU count and ISA flags are added."""
    host = run.doc["host"]
    topo = host.get("topology") or {}
    return (f"{host.get('hostname')} ({topo.get('cores')} cores, "
            f"{' '.join(topo.get('isa', ())) or 'no ISA flags'})")


REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


@dataclass(frozen=True)
class ReferenceSet:
    """Committed runs of one real host: one scaling experiment (``runs``: one run holding
    every group, or repeats of it, or one run per group and repeat) and latency runs
    calibrated on in full (``extra``), with the conditions recorded beside them
    (``conditions.json`` of each run, when present)."""

    name: str
    runs: list[Any]
    extra: list[Any]
    conditions: list[dict[str, Any]] = field(default_factory=list)


def reference_sets(root: Path = REFERENCE) -> list[ReferenceSet]:
    """One set per folder under ``root`` holding scaling runs (suite folders included);
    a folder holding a server run is a server set (the server run and the runs calibrating
    its replay, ``simulate --scenario server --validate``), not a scaling experiment."""
    import json

    from scaler.results import find_runs

    out = []
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in folders:
        if not any((p / "run.json").is_file() for p in folder.iterdir()):
            continue  # no run measured into it (yet)
        runs = find_runs([str(folder)])
        scaling = [r for r in runs if r.scenario == "scaling"]
        if not scaling or any(r.scenario == "server" for r in runs):
            continue
        conditions = [json.loads((r.path / "conditions.json").read_text()) for r in scaling
                      if (r.path / "conditions.json").is_file()]
        out.append(ReferenceSet(folder.name, scaling,
                                [r for r in runs if r.scenario == "latency"], conditions))
    return out


def validate_references(root: Path = REFERENCE, queries: int = 20_000
                        ) -> list[dict[str, Any]]:
    """``validate`` on every committed reference set (default split): per set its name, host,
    repeats, the held-out error, the calibration's fit error and what it measured, and how
    busy others kept the machine while the runs were measured."""
    out = []
    for ref in reference_sets(root):
        report, model = validate(ref.runs, ref.extra, queries=queries)
        others = [c["others_mean"] for c in ref.conditions if c.get("others_mean") is not None]
        out.append({
            "set": ref.name, "host": host_of(ref.runs[0]), "runs": len(ref.runs),
            "repeats": min(p["repeats"] for p in report["points"]),
            "extra_runs": len(ref.extra), "calibrated_on": report["calibrated_on"],
            "held_out": report["held_out"], "held_out_error": report["held_out_error"],
            "points": report["points"],
            "fit_rms_log_error": model.calibration["rms_log_error"],
            "measured": sorted(n for n, src in model.sources.items() if src == "measured"),
            "others_mean": sum(others) / len(others) if others else None,
            "others_worst": max(others) if others else None, "report": report,
        })
    return out


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
