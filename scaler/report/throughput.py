"""The throughput section: every point of the latency and throughput runs (one instance per
placement and precision) as bars with their 95% intervals and repeats, and the table, with
the ratios between precisions of the same placement and batch."""

from __future__ import annotations

from typing import Any

from scaler import significance
from scaler.report.fmt import flags, ips, ms, ratio
from scaler.report.html import esc, figure, note, table
from scaler.report.inputs import Inputs
from scaler.results import Run
from scaler.summaries import doc_points

TITLE = "Throughput"


def _points(runs: list[Run]) -> list[tuple[Run, dict[str, Any]]]:
    return [(r, p) for r in runs for p in doc_points(r.doc)
            if p.get("complete") and p.get("throughput_ips") is not None]


def precision_ratios(runs: list[Run]) -> list[dict[str, Any]]:
    """Each precision over fp32 at the same placement, engine family and batch, measured
    on the same host: the ratio of images/s with its interval (Welch, log values)."""
    pts = [(r, p) for r, p in _points([r for r in runs if r.scenario == "throughput"])
           if not p.get("emulated")]
    out = []
    for r, p in pts:
        if p["precision"] == "fp32":
            continue
        host = r.doc.get("host", {}).get("hostname")
        base = next((q for s, q in pts if q["precision"] == "fp32"
                     and q["placement"] == p["placement"] and q["batch"] == p["batch"]
                     and s.doc.get("host", {}).get("hostname") == host), None)
        if base is None:
            continue
        c = significance.compare(base["repeats_ips"], p["repeats_ips"])
        out.append({**c, "what": f"{p['engine']} {p['precision']} over {base['engine']} fp32, "
                                 f"{p['placement']}, batch {p['batch']}",
                    "noisy": bool(p.get("noisy") or base.get("noisy"))})
    return out


def section(inputs: Inputs) -> str:
    from scaler.plots import throughput_figure

    runs = [r for r in inputs.runs if r.scenario == "throughput"]
    if not runs:
        return note("No throughput run among the inputs.")
    names = {r.path: inputs.experiment(r) for r in runs}
    out = [figure(throughput_figure(runs, names), "throughput bars",
                  "Median images/s across repeats, the 95% interval as an error bar and each "
                  "repeat as a tick; hatched: noisy (others used more than 5% of its CPUs).")]
    rows = []
    for r, p in _points(runs):
        lat = p.get("latency_ms") or {}
        rows.append([esc(names[r.path]), esc(p["placement"]),
                     esc(f"{p['engine']} {p['precision']}"), str(p["batch"]), ips(p),
                     str(len(p.get("repeats_ips") or [])), ms(lat.get("p50")),
                     f"{lat.get('samples', 0):,}", flags(p, r.doc)])
    out.append(table(["run", "placement", "engine", "batch", "images/s [95% interval]",
                      "repeats", "batch latency p50", "batches", "conditions"], rows,
                     numeric=(3, 4, 5, 6, 7)))
    ratios = precision_ratios(runs)
    if ratios:
        out.append(table(["comparison", "ratio [95% interval]"],
                         [[esc(c["what"]), ratio(c)] for c in ratios], numeric=(1,)))
    return "\n".join(out)
