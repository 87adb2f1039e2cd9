"""The scaling figure: aggregate images/s against instances, with intervals, noisy points,
the ideal linear line, the USL fit and its band, and the oversubscribed region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler import threadstyles
from scaler.plots.style import (
    RUN_MARKERS,
    figure_title,
    marker_for,
    noisy_legend,
    placement_color,
    pyplot,
    run_labels,
    series_label,
)
from scaler.results import Run
from scaler.summaries import doc_points, scaling_series

WIDE_BAND = 0.5  # a fit whose band is wider than +-50% at its largest N says little


def _draw_usl(ax: Any, s: dict[str, Any], color: str) -> str | None:
    """The USL fit of a measured series with its confidence band, fitted on the points that
    are not oversubscribed (time-slicing is not what the USL models); none below 4 N. A fit
    whose band is very wide is left out: the note saying so is returned."""
    import numpy as np

    from scaler.simulate.usl import LEVEL, FitRefused, fit_usl

    pts = [(p["instances"], p["throughput_ips"]) for p in s["points"]
           if p["throughput_ips"] is not None and not p.get("oversubscribed")]
    try:
        fit = fit_usl([n for n, _ in pts], [x for _, x in pts])
    except FitRefused:
        return None
    ns = np.linspace(fit.n_min, fit.n_max, 200)
    lo, hi = fit.band(ns)
    mid = fit.predict(ns)
    width = float(np.max((hi - lo) / 2 / np.maximum(mid, 1e-12)))
    if width > WIDE_BAND:
        return (f"USL fit ({threadstyles.label(s)}) left out: its {LEVEL:.0%} band is "
                f"±{width:.0%} wide")
    ax.fill_between(ns, lo, hi, color=color, alpha=0.15, linewidth=0)
    ax.plot(ns, mid, "-", color=color, linewidth=1, alpha=0.7,
            label=f"USL fit ({threadstyles.label(s)}), N ≤ {fit.n_max:g}, R² {fit.r2:.3f}, "
                  f"{LEVEL:.0%} band")
    return None


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


def scaling_figure(runs: list[Run], allow_emulated: bool = False,
                   labels: dict[Path, str] | None = None) -> Any:
    """Aggregate images/s against instances, a line per series, with the ideal linear line
    from each series' first point and the oversubscribed region (N > cores) shaded.
    Colours stand for placements, markers for runs when several are drawn (labelled by what
    differs between them). Points with repeats carry their 95% interval as error bars;
    noisy points are drawn hollow. Measured series with 4+ instance counts within the cores
    get their USL fit and band; simulated series are dashed with open markers. Emulated
    series (VMs without hardware virtualization) are left out beside real ones, with a note,
    unless ``allow_emulated``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    labels = labels or run_labels(runs)
    series = [(r, s) for r in runs
              for s in scaling_series(r.doc.get("groups") or [], doc_points(r.doc))]
    notes: list[str] = []
    ideals: set[str] = set()
    if not allow_emulated and any(s.get("emulated") for _, s in series) and any(
            not s.get("emulated") for _, s in series):
        left = sorted({s["placement"] for _, s in series if s.get("emulated")})
        series = [(r, s) for r, s in series if not s.get("emulated")]
        notes.append(f"emulated series left out ({', '.join(left)}: VMs under TCG are not "
                     "timing results; scaler plot --allow-emulated draws them)")
    cores = min((r.doc["host"]["topology"].get("cores") or 0) for r in runs) or None
    markers = {r.path: RUN_MARKERS[k % len(RUN_MARKERS)] for k, r in enumerate(runs)}
    max_n = 1
    for run, s in series:
        pts = sorted(s["points"], key=lambda p: p["instances"])
        ns = [p["instances"] for p in pts]
        ips = [p["throughput_ips"] for p in pts]
        max_n = max(max_n, *ns)
        color = placement_color(s["placement"])
        marker = markers[run.path] if len(runs) > 1 else marker_for(s["placement"])
        label = series_label(s, labels.get(run.path, ""))
        if s.get("simulated"):
            ax.plot(ns, ips, marker + "--", color=color, markerfacecolor="none", label=label)
            continue
        line = threadstyles.LINESTYLES.get(s.get("threading"), "-")
        ax.plot(ns, ips, marker, linestyle=line, color=color, label=label,
                alpha=0.6 if s.get("emulated") else 1.0)
        _draw_intervals(ax, pts, color, marker)
        if not s.get("emulated"):
            note = _draw_usl(ax, s, color)
            if note:
                notes.append(note)
        if pts and pts[0]["instances"] >= 1:
            per = ips[0] / ns[0]
            ideal = f"ideal linear ({threadstyles.label(s)})"  # one legend entry per series
            ax.plot([ns[0], ns[-1]], [per * ns[0], per * ns[-1]], ":", color=color,
                    linewidth=1, label="_nolegend_" if ideal in ideals else ideal)
            ideals.add(ideal)
    if cores and max_n > cores:
        ax.axvspan(cores + 0.5, max_n + 0.5, color="grey", alpha=0.12,
                   label=f"oversubscribed (> {cores} cores; left out of fits)")
    ax.set_xlabel("instances")
    ax.set_ylabel("aggregate throughput (images/s)")
    if max_n <= 16:
        ax.set_xticks(range(1, max_n + 1))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    # the measured (or simulated) figures set the scale: an ideal line running far above a
    # plateau, or a huge interval, is cut at the top rather than squashing the data
    values = [p["throughput_ips"] for _, s in series for p in s["points"]
              if p.get("throughput_ips") is not None]
    highs = [p["ci95_ips"][1] for _, s in series for p in s["points"] if p.get("ci95_ips")]
    if values:
        ax.set_ylim(0, min(max([*values, *highs]) * 1.15, max(values) * 2.0))
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(figure_title(runs, "scaling, batch 1"))
    for k, note in enumerate(notes):
        ax.text(0.01, 0.01 + 0.045 * k, note, transform=ax.transAxes, fontsize=7,
                color="dimgrey", va="bottom")
    noisy_legend(ax, fontsize=8)
    return fig
