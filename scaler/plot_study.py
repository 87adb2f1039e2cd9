"""The figure of the study's headline: images/s of tuned bare metal, bare metal as the study
ran it (``--threading model-zoo``), pinned and VMs at one instance count, with the 95%
intervals across repeats (headless, Agg), and beside them, when given, the simulated curves
of another machine (``report --machine``). Takes plain bars and curves so it knows nothing
of runs."""

from __future__ import annotations

from typing import Any

# one colour per side, the same in every panel
COLORS = {"tuned": "#4c72b0", "study": "#c44e52", "pinned": "#55a868", "vm": "#8172b2"}


def study_figure(panels: list[dict[str, Any]], simulated: dict[str, Any] | None = None
                 ) -> Any:
    """One panel per measured set (``{"title", "bars": [{"label", "kind", "ips",
    "ci95"}]}``): a bar per side with its interval as an error bar; a bar without an
    interval (one repeat) is hatched. ``simulated`` (``{"title", "curves": [{"label",
    "kind", "tuned", "points": {N: ips}}]}``) adds a last panel of dashed curves over N, open
    markers (a model has no interval); tuned curves dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels and simulated is None:
        raise ValueError("no panel to draw")
    count = len(panels) + (simulated is not None)
    fig, axes = plt.subplots(1, count, figsize=(max(6.5, 4.2 * count), 4.2), squeeze=False)
    if simulated is not None:
        _curves(axes[0][-1], simulated)
    for ax, panel in zip(axes[0], panels):
        bars = panel["bars"]
        xs = range(len(bars))
        values = [b["ips"] for b in bars]
        low = [b["ips"] - b["ci95"][0] if b.get("ci95") else 0.0 for b in bars]
        high = [b["ci95"][1] - b["ips"] if b.get("ci95") else 0.0 for b in bars]
        drawn = ax.bar(xs, values, color=[COLORS.get(b["kind"], "#999999") for b in bars],
                       yerr=[low, high], capsize=5, edgecolor="black", linewidth=0.6)
        for rect, b in zip(drawn, bars):
            if not b.get("ci95"):
                rect.set_hatch("//")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([b["label"] for b in bars], rotation=15, ha="right", fontsize=8)
        ax.set_ylabel("images/s, all instances (median of repeats)")
        ax.set_title(panel["title"], fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("The study's 2.04x: VM-like against bare metal as the study ran it and tuned",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _curves(ax: Any, panel: dict[str, Any]) -> None:
    for c in panel["curves"]:
        ns = sorted(c["points"])
        ax.plot(ns, [c["points"][n] for n in ns], linestyle=":" if c.get("tuned") else "--",
                marker="o", markerfacecolor="none", color=COLORS.get(c["kind"], "#999999"),
                label=c["label"])
    ax.set_xlabel("instances")
    ax.set_ylabel("images/s, all instances (simulated)")
    ax.set_title(panel["title"], fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
