"""Latency figures: the percentiles of every measured point (bars, or lines against the
instance count when there are many) and the distributions of raw samples (CDF and tail);
a percentile fewer queries back than early stopping needs is drawn hollow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler import threadstyles
from scaler.plots.style import figure_title, placement_color, pyplot, run_labels
from scaler.results import Run
from scaler.summaries import doc_points

LATENCY_KEYS = ("p50", "p90", "p99", "p99.9")
MANY_ROWS = 16  # more latency rows than this: percentile lines against N instead of bars


def _enough(p: dict[str, Any], key: str) -> bool:
    """Whether a point's queries back this percentile (LoadGen's early-stopping minimum)."""
    from scaler.stats import MIN_SAMPLES

    samples = (p.get("latency_ms") or {}).get("samples")
    need = MIN_SAMPLES.get(float(key[1:]), 0)
    return samples is None or samples >= need


def latency_figure(runs: list[Run], labels: dict[Path, str] | None = None) -> Any:
    """Latency percentiles (ms) of every measured point (pooled over its repeats): a bar
    group per run and point, or, past ``MANY_ROWS`` points, percentile lines against the
    instance count. A percentile from fewer queries than early stopping needs is drawn
    hollow."""
    plt = pyplot()
    labels = labels or run_labels(runs)
    rows = [(r, p) for r in runs for p in doc_points(r.doc)
            if p.get("complete") and (p.get("latency_ms") or {}).get("p50") is not None]
    if len(rows) > MANY_ROWS:
        return _latency_lines(runs, rows, labels)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * max(len(rows), 2) * len(LATENCY_KEYS) / 2),
                           layout="constrained")
    height = 0.8 / len(LATENCY_KEYS)
    for k, key in enumerate(LATENCY_KEYS):
        color = f"C{k}"
        ys = [i + k * height for i in range(len(rows))]
        xs = [(p["latency_ms"].get(key) or 0) for _, p in rows]
        solid = [_enough(p, key) for _, p in rows]
        if any(solid):
            ax.barh([y for y, ok in zip(ys, solid) if ok],
                    [x for x, ok in zip(xs, solid) if ok], height=height, color=color,
                    label=key)
        thin = [(y, x) for y, x, ok in zip(ys, xs, solid) if not ok]
        if thin:
            ax.barh([y for y, _ in thin], [x for _, x in thin], height=height,
                    facecolor="none", edgecolor=color, hatch="//",
                    label=f"{key} (too few queries)")
    names = [_row_name(r, p, labels) for r, p in rows]
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(figure_title(runs, "latency percentiles"))
    ax.legend(fontsize=8)
    return fig


def _row_name(run: Run, p: dict[str, Any], labels: dict[Path, str]) -> str:
    name = f"{run.scenario}: {threadstyles.label(p)} x{p['instances']} batch {p['batch']}"
    return name + (f" [{labels[run.path]}]" if labels.get(run.path) else "")


def _latency_lines(runs: list[Run], rows: list[tuple[Run, dict[str, Any]]],
                   labels: dict[Path, str]) -> Any:
    """p50 and p99 against instances, a pair of lines per series (many points)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run, p in rows:
        series.setdefault((run.path, p["placement"], threadstyles.label(p), p["engine"],
                           p["precision"], p["batch"]), []).append(p)
    for (path, placement, shown, engine, precision, batch), pts in series.items():
        pts.sort(key=lambda p: p["instances"])
        color = placement_color(placement)
        name = f"{shown} ({engine} {precision}, batch {batch})"
        if labels.get(path):
            name += f" [{labels[path]}]"
        ns = [p["instances"] for p in pts]
        for key, style in (("p50", "o-"), ("p99", "s--")):
            ax.plot(ns, [p["latency_ms"].get(key) for p in pts], style, color=color,
                    markersize=4, label=f"{name} {key}")
            thin = [p for p in pts if not _enough(p, key)]
            if thin:
                ax.plot([p["instances"] for p in thin],
                        [p["latency_ms"].get(key) for p in thin], style[0], color=color,
                        markerfacecolor="white", linestyle="none", markersize=7)
    ax.set_xlabel("instances")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(figure_title(runs, "latency percentiles against instances"))
    ax.legend(fontsize=7)
    return fig


PERCENTILE_MARKERS = {"p50": "o", "p90": "^", "p99": "s", "p99.9": "D"}
_QUANTILE = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999}


def latency_cdf_figure(curves: list[dict[str, Any]], title: str) -> Any:
    """Latency distributions from raw samples: the CDF (left) and the tail, 1 - CDF on a log
    scale (right), one line per curve, with the recorded percentiles marked (hollow where
    too few queries back them: LoadGen's early-stopping rule).

    A curve is ``{"label", "latency_ms": array of every query's latency, "percentiles":
    {"p50": ms, ...}, "backed": {"p50": bool, ...}, "noisy": bool, "emulated": bool}``;
    noisy curves are dashed."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    lows, highs = [], []
    for k, c in enumerate(curves):
        lat = np.asarray(c["latency_ms"], float)
        if lat.size == 0:
            continue
        color = f"C{k % 10}"
        style = "--" if c.get("noisy") else "-"
        label = c["label"] + (" (noisy)" if c.get("noisy") else "") + (
            " [emulated]" if c.get("emulated") else "") + f", {lat.size:,} queries"
        q = np.linspace(0.0, 1.0, 1001)
        x = np.quantile(lat, q)
        ax_c.plot(x, q, style, color=color, linewidth=1.3, label=label)
        tail = 1.0 - np.geomspace(1.0, 1.0 / lat.size, 400)[::-1] if lat.size > 1 else q
        ax_t.plot(np.quantile(lat, tail), 1.0 - tail, style, color=color, linewidth=1.3)
        lows.append(max(float(x[0]), 1e-9))
        highs.append(float(x[-1]))
        for key, marker in PERCENTILE_MARKERS.items():
            value = (c.get("percentiles") or {}).get(key)
            if value is None:
                continue
            face = color if (c.get("backed") or {}).get(key, True) else "white"
            for ax, y in ((ax_c, _QUANTILE[key]), (ax_t, 1.0 - _QUANTILE[key])):
                ax.plot([value], [y], marker, color=color, markerfacecolor=face,
                        markersize=6, zorder=3)
    # the CDF panel ends a little past the largest p99.9 (the tail panel shows the rest)
    upper = [v for c in curves for v in [(c.get("percentiles") or {}).get("p99.9")] if v]
    if lows and upper:
        ax_c.set_xlim(min(lows) * 0.9, min(max(upper) * 1.3, max(highs)))
    for ax, high in ((ax_c, max(upper) * 1.3 if upper else None), (ax_t, None)):
        ax.set_xlabel("latency per query (ms)")
        top = high if high is not None else (max(highs) if highs else None)
        if lows and top and top / min(lows) > 20:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    ax_c.set_ylabel("share of queries at or below (CDF)")
    ax_c.set_ylim(0, 1.01)
    ax_t.set_yscale("log")
    ax_t.set_ylabel("share of queries above (1 - CDF)")
    handles, labels = ax_c.get_legend_handles_labels()
    handles += [Line2D([], [], marker=m, color="black", linestyle="none", markersize=6)
                for m in PERCENTILE_MARKERS.values()]
    labels += [f"{k} (hollow: too few queries)" if k == "p99.9" else k
               for k in PERCENTILE_MARKERS]
    ax_c.legend(handles, labels, fontsize=7, loc="lower right")
    fig.suptitle(title)
    return fig
