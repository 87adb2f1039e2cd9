"""The multistream figure: batch latency and throughput against batch per layout, with the
latency bound and the largest batch that holds it."""

from __future__ import annotations

from typing import Any

from scaler.plots.style import figure_title, noisy_legend, pyplot
from scaler.results import Run
from scaler.summaries import multistream_results


def multistream_figure(run: Run) -> Any:
    """Throughput and latency against batch for each layout, with the latency bound; the
    throughput carries its 95% interval across repeats, noisy probes are drawn hollow."""
    plt = pyplot()
    from matplotlib.ticker import ScalarFormatter

    doc = run.doc
    stat, bound = doc["requested"]["stat"], doc["requested"]["latency_bound_ms"]
    fig, (ax_l, ax_t) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    noisy_labelled = False
    for res in multistream_results(doc):
        probes = sorted(res["probes"], key=lambda p: p["batch"])
        b = [p["batch"] for p in probes]
        line, = ax_l.plot(b, [p["latency_ms"] for p in probes], "o-", label=res["layout"])
        color = line.get_color()
        ax_t.plot(b, [p["throughput_ips"] for p in probes], "o-", color=color,
                  label=res["layout"])
        with_ci = [p for p in probes if p.get("ci95_ips") and p.get("throughput_ips")]
        if with_ci:  # the 95% interval across repeats of each probe
            ax_t.errorbar([p["batch"] for p in with_ci], [p["throughput_ips"] for p in with_ci],
                          yerr=[[max(p["throughput_ips"] - p["ci95_ips"][0], 0.0)
                                 for p in with_ci],
                                [max(p["ci95_ips"][1] - p["throughput_ips"], 0.0)
                                 for p in with_ci]],
                          fmt="none", ecolor=color, capsize=3, linewidth=1)
        noisy = [p for p in probes if p.get("noisy")]
        for ax, key in ((ax_l, "latency_ms"), (ax_t, "throughput_ips")):
            if noisy:
                ax.plot([p["batch"] for p in noisy], [p[key] for p in noisy], "o",
                        markerfacecolor="white", markeredgecolor=color, markersize=8,
                        linestyle="none",
                        label=None if noisy_labelled else "noisy (others > 5% of its CPUs)")
        noisy_labelled = noisy_labelled or bool(noisy)
        if res["meets_bound"]:
            ax_t.annotate(f"batch {res['batch']}", (res["batch"], res["throughput_ips"]),
                          textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax_l.axhline(bound, color="red", linestyle="--", label=f"bound {bound:g} ms")
    ax_l.set_ylabel(f"batch latency {stat} (ms)")
    ax_t.set_ylabel("aggregate throughput (images/s)")
    batches = sorted({p["batch"] for res in multistream_results(doc) for p in res["probes"]})
    for ax in (ax_l, ax_t):
        ax.set_xlabel("batch")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())  # batch 8, not 2^3
        if 0 < len(batches) <= 12:
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        noisy_legend(ax, fontsize=8)
    fig.suptitle(figure_title([run], "multistream"))
    return fig
