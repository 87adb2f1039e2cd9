"""The throughput figure: images/s of every point as bars with their 95% interval and the
repeats' values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler import threadstyles
from scaler.plots.style import figure_title, pyplot
from scaler.results import Run
from scaler.summaries import doc_points


def throughput_figure(runs: list[Run], names: dict[Path, str] | None = None) -> Any:
    """Images/s of every point of throughput (and latency) runs as horizontal bars with their
    95% interval across repeats; noisy points hatched, emulated ones labelled."""
    plt = pyplot()
    rows = []
    for r in runs:
        name = (names or {}).get(r.path) or r.doc.get("requested", {}).get("experiment") \
            or r.scenario
        for p in doc_points(r.doc):
            if not p.get("complete") or p.get("throughput_ips") is None:
                continue
            label = (f"{name}: {threadstyles.label(p)} {p['engine']} {p['precision']}, "
                     f"batch {p['batch']}" + (" [emulated]" if p.get("emulated") else ""))
            rows.append((label, p))
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.42 * max(len(rows), 2)), layout="constrained")
    for i, (_, p) in enumerate(rows):
        noisy = bool(p.get("noisy"))
        ax.barh(i, p["throughput_ips"], height=0.6, color="white" if noisy else "C0",
                edgecolor="C3" if p.get("emulated") else "C0", hatch="//" if noisy else None,
                label="noisy (others > 5% of its CPUs)" if noisy and not any(
                    q.get("noisy") for _, q in rows[:i]) else None)
        ci = p.get("ci95_ips")
        if ci:
            ax.errorbar(p["throughput_ips"], i, xerr=[[max(p["throughput_ips"] - ci[0], 0.0)],
                                                      [max(ci[1] - p["throughput_ips"], 0.0)]],
                        fmt="none", ecolor="black", capsize=3, linewidth=1)
        reps = p.get("repeats_ips") or []
        ax.plot(reps, [i] * len(reps), "|", color="black", markersize=9,
                label="repeats" if reps and i == 0 else None)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("throughput (images/s), median with 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(figure_title(runs, "throughput"))
    if rows:
        fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    return fig
