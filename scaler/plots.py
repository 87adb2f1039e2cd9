"""Plots: functions that take runs and return a matplotlib Figure (headless, Agg).

Emulated series (VMs without hardware virtualization) are not timing results: they are
refused beside real ones unless ``allow_emulated`` is given, and then drawn and labelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.results import Run
from scaler.summaries import doc_points, multistream_results, scaling_series, server_results

FORMATS = ("png", "svg", "pdf")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _marker(placement: str) -> str:
    from scaler.placements import find

    known = find(placement)
    return known.marker if known is not None else "d"


def _series_label(s: dict[str, Any]) -> str:
    label = f"{s['placement']} ({s['engine']} {s['precision']})"
    if s.get("simulated"):
        label += " [simulated]"
    return label + " [emulated]" if s.get("emulated") else label


def _draw_usl(ax: Any, s: dict[str, Any], color: str) -> None:
    """The USL fit of a measured series with its confidence band (none below 4 N)."""
    import numpy as np

    from scaler.simulate.usl import LEVEL, FitRefused, fit_usl

    pts = [(p["instances"], p["throughput_ips"]) for p in s["points"]
           if p["throughput_ips"] is not None]
    try:
        fit = fit_usl([n for n, _ in pts], [x for _, x in pts])
    except FitRefused:
        return
    ns = np.linspace(fit.n_min, fit.n_max, 200)
    lo, hi = fit.band(ns)
    ax.fill_between(ns, lo, hi, color=color, alpha=0.15, linewidth=0)
    ax.plot(ns, fit.predict(ns), "-", color=color, linewidth=1, alpha=0.7,
            label=f"USL fit ({s['placement']}), R² {fit.r2:.3f}, {LEVEL:.0%} band")


def _draw_intervals(ax: Any, pts: list[dict[str, Any]], color: str, marker: str) -> None:
    """Error bars from each point's 95% interval across repeats; noisy points hollow."""
    with_ci = [p for p in pts if p.get("ci95_ips")]
    if with_ci:
        ns = [p["instances"] for p in with_ci]
        mid = [p["throughput_ips"] for p in with_ci]
        low = [max(m - p["ci95_ips"][0], 0.0) for m, p in zip(mid, with_ci)]
        high = [max(p["ci95_ips"][1] - m, 0.0) for m, p in zip(mid, with_ci)]
        ax.errorbar(ns, mid, yerr=[low, high], fmt="none", ecolor=color, capsize=3,
                    linewidth=1)
    noisy = [p for p in pts if p.get("noisy")]
    if noisy:
        ax.plot([p["instances"] for p in noisy], [p["throughput_ips"] for p in noisy], marker,
                markerfacecolor="white", markeredgecolor=color, markersize=9, linestyle="none",
                label="noisy (others > 5% of its CPUs)")


def scaling_figure(runs: list[Run], allow_emulated: bool = False) -> Any:
    """Aggregate images/s against instances, a line per series, with the ideal linear line
    from each series' first point and the oversubscribed region (N > cores) shaded.
    Points with repeats carry their 95% interval as error bars; noisy points are drawn
    hollow. Measured series with 4+ instance counts get their USL fit and band; simulated
    series are dashed with open markers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    series = [s for r in runs for s in scaling_series(r.doc["groups"], doc_points(r.doc))]
    if any(s.get("emulated") for s in series) and not allow_emulated:
        if any(not s.get("emulated") for s in series):
            raise UsageError("emulated series are not timing results: refusing to draw them "
                             "beside real ones (use --allow-emulated to draw them labelled)")
    cores = min((r.doc["host"]["topology"].get("cores") or 0) for r in runs) or None
    max_n = 1
    for s in series:
        pts = sorted(s["points"], key=lambda p: p["instances"])
        ns = [p["instances"] for p in pts]
        ips = [p["throughput_ips"] for p in pts]
        max_n = max(max_n, *ns)
        style = _marker(s["placement"]) + "-"
        if s.get("simulated"):
            line, = ax.plot(ns, ips, style[0] + "--", markerfacecolor="none",
                            label=_series_label(s))
            continue
        line, = ax.plot(ns, ips, style, label=_series_label(s),
                        alpha=0.6 if s.get("emulated") else 1.0)
        _draw_intervals(ax, pts, line.get_color(), style[0])
        if not s.get("emulated"):
            _draw_usl(ax, s, line.get_color())
        if pts and pts[0]["instances"] >= 1:
            per = ips[0] / ns[0]
            ax.plot([ns[0], ns[-1]], [per * ns[0], per * ns[-1]], ":", color=line.get_color(),
                    linewidth=1, label=f"ideal linear ({s['placement']})")
    if cores and max_n > cores:
        ax.axvspan(cores + 0.5, max_n + 0.5, color="grey", alpha=0.12,
                   label=f"oversubscribed (> {cores} cores)")
    ax.set_xlabel("instances")
    ax.set_ylabel("aggregate throughput (images/s)")
    if max_n <= 16:
        ax.set_xticks(range(1, max_n + 1))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(_title(runs, "scaling, batch 1"))
    ax.legend(fontsize=8)
    return fig


def latency_figure(runs: list[Run]) -> Any:
    """Latency percentiles (ms) of every measured point (pooled over its repeats), a bar
    group per run and point."""
    plt = _pyplot()
    keys = ("p50", "p90", "p99", "p99.9")
    rows = [(f"{r.scenario}: {p['placement']} x{p['instances']} batch {p['batch']}",
             p["latency_ms"]) for r in runs for p in doc_points(r.doc)
            if p.get("complete") and (p.get("latency_ms") or {}).get("p50") is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * max(len(rows), 2) * len(keys) / 2),
                           layout="constrained")
    height = 0.8 / len(keys)
    for k, key in enumerate(keys):
        ax.barh([i + k * height for i in range(len(rows))],
                [lat.get(key) or 0 for _, lat in rows], height=height, label=key)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [name for name, _ in rows],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(runs, "latency percentiles"))
    ax.legend(fontsize=8)
    return fig


def multistream_figure(run: Run) -> Any:
    """Throughput and latency against batch for each layout, with the latency bound."""
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    doc = run.doc
    stat, bound = doc["requested"]["stat"], doc["requested"]["latency_bound_ms"]
    fig, (ax_l, ax_t) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    for res in multistream_results(doc):
        probes = sorted(res["probes"], key=lambda p: p["batch"])
        b = [p["batch"] for p in probes]
        ax_l.plot(b, [p["latency_ms"] for p in probes], "o-", label=res["layout"])
        ax_t.plot(b, [p["throughput_ips"] for p in probes], "o-", label=res["layout"])
        if res["meets_bound"]:
            ax_t.annotate(f"batch {res['batch']}", (res["batch"], res["throughput_ips"]),
                          textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax_l.axhline(bound, color="red", linestyle="--", label=f"bound {bound:g} ms")
    ax_l.set_ylabel(f"batch latency {stat} (ms)")
    ax_t.set_ylabel("aggregate throughput (images/s)")
    for ax in (ax_l, ax_t):
        ax.set_xlabel("batch")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # batch 8, not 2^3
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title([run], "multistream"))
    return fig


def server_figure(run: Run) -> Any:
    """The hockey stick: latency from arrival (p50, p99 and the conservative p99) against
    the offered rate, a line per layout, with the bound and each layout's peak marked;
    invalid probes (the generator fell behind) drawn hollow."""
    plt = _pyplot()
    doc = run.doc
    bound = doc["requested"]["latency_bound_ms"]
    found = server_results(doc, doc_points(doc))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    layouts = dict.fromkeys(r["layout"] for r in found["results"])
    for layout in layouts:
        rows = sorted((r for r in found["results"] if r["layout"] == layout),
                      key=lambda r: r["target_qps"])
        rates = [r["target_qps"] for r in rows]
        p99 = [r["latency_ms"]["p99"] for r in rows]
        line, = ax.plot(rates, p99, _marker(layout.split(" x")[0]) + "-",
                        label=f"{layout} p99")
        color = line.get_color()
        ax.plot(rates, [r["latency_ms"]["p50"] for r in rows], ":", color=color,
                label=f"{layout} p50")
        early = [(r["target_qps"], r["early_stopping_p99_ms"]) for r in rows
                 if r["early_stopping_p99_ms"] is not None]
        if early:
            ax.plot(*zip(*early), "_", color=color, markersize=12,
                    label=f"{layout} conservative p99")
        bad = [r for r in rows if not r["valid"]]
        if bad:
            ax.plot([r["target_qps"] for r in bad], [r["latency_ms"]["p99"] for r in bad], "o",
                    markerfacecolor="white", markeredgecolor=color, markersize=10,
                    linestyle="none", label=f"{layout} invalid (generator behind)")
        peak = (found.get("peak_qps") or {}).get(layout)
        if peak is not None:
            ax.axvline(peak, color=color, linestyle="--", linewidth=1,
                       label=f"{layout} peak {peak:g} qps")
    ax.axhline(bound, color="red", linestyle="--", label=f"bound {bound:g} ms")
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel("latency from arrival (ms)")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    ax.yaxis.set_major_formatter(ScalarFormatter())  # 50 ms, not 5 x 10^1
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(_title([run], f"server: latency against load ({doc['requested']['stat']})"))
    return fig


def _title(runs: list[Run], what: str) -> str:
    models = sorted({r.doc["effective"]["model"] for r in runs})
    hosts = sorted({r.doc["host"].get("hostname", "?") for r in runs})
    return f"{what}: {', '.join(models)} on {', '.join(hosts)}"


def figures_for(runs: list[Run], allow_emulated: bool = False) -> dict[str, Any]:
    """Every figure that these runs support, by file stem."""
    figs: dict[str, Any] = {}
    scaling = [r for r in runs if r.scenario == "scaling"]
    if scaling:
        figs["scaling"] = scaling_figure(scaling, allow_emulated)
    if any((p.get("latency_ms") or {}).get("p50") is not None
           for r in runs for p in doc_points(r.doc)):
        figs["latency"] = latency_figure(runs)
    for r in runs:
        if r.scenario == "server" and r.doc["groups"]:
            figs[f"server-{r.path.name}" if len(runs) > 1 else "server"] = server_figure(r)
        if r.scenario == "multistream" and r.doc["groups"]:
            figs[f"multistream-{r.path.name}" if len(runs) > 1 else "multistream"] = (
                multistream_figure(r))
    return figs


def save_figures(figs: dict[str, Any], out: Path,
                 formats: tuple[str, ...] = ("png",)) -> list[Path]:
    plt = _pyplot()
    written = []
    for stem, fig in figs.items():
        for fmt in formats:
            path = out / f"{stem}.{fmt}"
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=fmt, dpi=120)
            tmp.replace(path)
            written.append(path)
        plt.close(fig)
    return written


def parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"unknown plot format {', '.join(bad) or text!r}: choose from "
                         f"{', '.join(FORMATS)}")
    return formats
