"""The server figure (the hockey stick): latency from arrival against the offered rate per
layout, with the bound and each layout's peak."""

from __future__ import annotations

from typing import Any

from scaler.plots.style import figure_title, marker_for, pyplot
from scaler.results import Run
from scaler.summaries import doc_points, server_results


def server_figure(run: Run) -> Any:
    """The hockey stick: latency from arrival (p50, p99 and the conservative p99) against
    the offered rate, a line per layout, with the bound and each layout's peak marked;
    invalid probes (the generator fell behind) drawn hollow."""
    plt = pyplot()
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
        line, = ax.plot(rates, p99, marker_for(layout.split(" x")[0]) + "-",
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
    ax.set_title(figure_title([run], f"server: latency against load ({doc['requested']['stat']})"))
    return fig
