"""The latency section: distributions from the raw samples (CDF and tail, percentiles
marked) and the percentile table of every point, with LoadGen's conservative estimates.

Curves are drawn from every recorded query of a point (all its complete repeats and
instances); the marked percentiles are the ones the run recorded, so a reader can check the
table against the curve. Which points get a curve: every point of a latency run; per
placement of a scaling run its smallest, its largest instance count and the count equal to
the cores; the chosen batch of every multistream layout. Throughput runs (a few large
batches) have too few queries for a distribution and appear in the table only.
"""

from __future__ import annotations

from typing import Any

from scaler.report.fmt import flags, ms
from scaler.report.html import esc, figure, note, table
from scaler.report.inputs import Inputs
from scaler.results import Run
from scaler.summaries import doc_points, multistream_results
from scaler.threadstyles import label as series_label

TITLE = "Latency distributions"
KEYS = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999}


def point_latencies_ms(run: Run, point: dict[str, Any]) -> Any:
    """Every recorded query latency (ms) of a point: its complete groups, all instances."""
    import numpy as np

    from scaler.export import group_samples

    done = {g.get("id") for g in run.doc.get("groups", []) if g.get("status") == "complete"}
    parts = []
    for gid in point.get("groups", []):
        if gid not in done:
            continue
        for start, end in group_samples(run, gid).values():
            parts.append((end - start) / 1e6)
    return np.concatenate(parts) if parts else np.zeros(0)


def backed(samples: int) -> dict[str, bool]:
    """Which percentiles the sample can bound at 99% confidence (LoadGen's rule)."""
    from scaler.stats import early_stopping_min_queries

    return {k: samples >= early_stopping_min_queries(q) for k, q in QUANTILES.items()}


def _label(run_name: str, p: dict[str, Any], scenario: str) -> str:
    if scenario == "multistream":
        return f"{p.get('layout') or series_label(p)} batch {p['batch']}"
    if scenario == "scaling":
        return f"{series_label(p)} N={p['instances']}"
    return f"{series_label(p)} ({p['engine']} {p['precision']})"


def curve_points(run: Run) -> list[dict[str, Any]]:
    """The points of a run that get a curve (see the module's docstring)."""
    pts = [p for p in doc_points(run.doc) if p.get("complete")]
    if run.scenario == "latency":
        return pts
    if run.scenario == "scaling":
        cores = run.doc.get("host", {}).get("topology", {}).get("cores")
        out = []
        for shown in dict.fromkeys(series_label(p) for p in pts):  # per series (and style)
            mine = sorted((p for p in pts if series_label(p) == shown),
                          key=lambda p: p["instances"])
            ns = {mine[0]["instances"], mine[-1]["instances"], cores}
            out += [p for p in mine if p["instances"] in ns]
        return out
    if run.scenario == "multistream":
        chosen = {(r["layout"], r["batch"]) for r in multistream_results(run.doc)
                  if r["meets_bound"]}
        return [p for p in pts if (p.get("layout"), p["batch"]) in chosen]
    return []


def curves(run: Run) -> list[dict[str, Any]]:
    out = []
    for p in curve_points(run):
        lat = point_latencies_ms(run, p)
        if lat.size < 2:
            continue
        recorded = p.get("latency_ms") or {}
        out.append({"label": _label(run.path.name, p, run.scenario), "latency_ms": lat,
                    "percentiles": {k: recorded.get(k) for k in QUANTILES},
                    "backed": backed(int(lat.size)), "noisy": bool(p.get("noisy")),
                    "emulated": bool(p.get("emulated"))})
    return out


def _conservative(lat: dict[str, Any]) -> str:
    early = lat.get("early_stopping") or {}
    if not early:
        return "-"
    return ", ".join(f"{k} {ms(v) if v is not None else 'too few queries'}"
                     for k, v in early.items())


def _rows(run: Run, name: str) -> list[list[str]]:
    rows = []
    pts = curve_points(run) if run.scenario == "multistream" else doc_points(run.doc)
    for p in pts:
        lat = p.get("latency_ms") or {}
        if not p.get("complete") or lat.get("p50") is None:
            continue
        spread = p.get("latency_repeats") or []
        per_repeat = " | ".join(f"{ms(r.get('p50'))} / {ms(r.get('p99'))}" for r in spread) \
            if len(spread) > 1 else "-"
        what = (f"{p.get('layout') or p['placement']} x{p['instances']} batch {p['batch']}"
                if run.scenario != "multistream" else f"{p.get('layout')} batch {p['batch']}")
        rows.append([esc(name), esc(what), *(ms(lat.get(k)) for k in KEYS),
                     f"{lat.get('samples', 0):,}", esc(_conservative(lat)), esc(per_repeat),
                     flags(p, run.doc)])
    return rows


def section(inputs: Inputs) -> str:
    out = []
    runs = [r for r in inputs.runs if not r.doc.get("simulated")]
    for r in runs:
        if r.scenario not in ("latency", "scaling", "multistream"):
            continue
        found = curves(r)
        from scaler.plots import latency_cdf_figure

        name = inputs.experiment(r)
        title = (f"{name}: {r.doc['effective']['engine']} {r.doc['effective']['precision']} "
                 f"{r.doc['effective']['model']}, latency of every recorded query")
        # emulated VMs (TCG) are not timing results: never on the same axes as real ones
        for group, what in (([c for c in found if not c["emulated"]], ""),
                            ([c for c in found if c["emulated"]], " (emulated VMs)")):
            if not group:
                continue
            out.append(figure(
                latency_cdf_figure(group, title + what), f"latency distribution of {name}{what}",
                f"<b>{esc(name)}</b>{esc(what)} ({esc(r.path.name)}): left, the share of "
                "queries at or below each latency; right, the share above it on a log scale "
                "(the tail). Markers: the recorded p50, p90, p99 and p99.9 (hollow where the "
                "run has too few queries to bound that percentile at 99% confidence). Dashed: "
                "noisy points."))
    rows = [row for r in runs for row in _rows(r, inputs.experiment(r))]
    if rows:
        out.append("<h3>Percentiles (pooled over repeats)</h3>")
        out.append(table(["run", "point", *KEYS, "queries",
                          "conservative (early stopping, 99%)", "per repeat p50 / p99",
                          "conditions"], rows, numeric=tuple(range(2, 2 + len(KEYS) + 1))))
        out.append(note("Batch latency: one query is a whole batch. Multistream runs: the "
                        "chosen batch of each layout (every probe is in the multistream "
                        "section). Decisions (the multistream bound, capacity) use the "
                        "conservative estimate, which needs about 64 queries for p90 and 662 "
                        "for p99."))
    return "\n".join(out) or note("No run with recorded latencies among the inputs.")
