"""Plots: functions that take runs and return a matplotlib Figure (headless, Agg).

One module per figure (``scaling``, ``latency``, ``multistream``, ``server``, ``throughput``)
over what they share (``style``: colours, markers, labels, legend, title); this module says
which figures a set of runs supports and writes them. Emulated series (VMs without hardware
virtualization) are not timing results: they are refused beside real ones unless
``allow_emulated`` is given, and then drawn and labelled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.plots.latency import latency_cdf_figure, latency_figure
from scaler.plots.multistream import multistream_figure
from scaler.plots.scaling import scaling_figure
from scaler.plots.server import server_figure
from scaler.plots.style import machine_name, placement_color, pyplot, run_labels
from scaler.plots.throughput import throughput_figure
from scaler.results import Run
from scaler.summaries import doc_points

# the figures and helpers callers import from scaler.plots
__all__ = ["FORMATS", "automatic", "figures_for", "latency_cdf_figure", "latency_figure",
           "machine_name", "multistream_figure", "parse_formats", "placement_color", "run_labels",
           "save_figures", "scaling_figure", "server_figure", "throughput_figure"]

FORMATS = ("png", "svg", "pdf")


def automatic() -> bool:
    """Whether a command that writes a run also draws its figures into the run's folder:
    not where ``SCALER_PLOTS=off`` (scripts of many runs, and the test suite: matplotlib's
    import and a PNG cost a short run more than its measurement); ``scaler plot`` draws them
    later from run.json alike."""
    return os.environ.get("SCALER_PLOTS", "").lower() != "off"


def figures_for(runs: list[Run], allow_emulated: bool = False,
                labels: list[str] | None = None) -> dict[str, Any]:
    """Every figure that these runs support, by file stem."""
    figs: dict[str, Any] = {}
    named = run_labels(runs, labels)
    scaling = [r for r in runs if r.scenario == "scaling"]
    if scaling:
        figs["scaling"] = scaling_figure(scaling, allow_emulated,
                                         {r.path: named[r.path] for r in scaling})
    if any((p.get("latency_ms") or {}).get("p50") is not None
           for r in runs for p in doc_points(r.doc)):
        figs["latency"] = latency_figure(runs, named)
    for r in runs:
        if r.scenario == "server" and r.doc.get("groups"):
            figs[f"server-{r.path.name}" if len(runs) > 1 else "server"] = server_figure(r)
        if r.scenario == "multistream" and r.doc.get("groups"):
            figs[f"multistream-{r.path.name}" if len(runs) > 1 else "multistream"] = (
                multistream_figure(r))
    return figs


def save_figures(figs: dict[str, Any], out: Path,
                 formats: tuple[str, ...] = ("png",)) -> list[Path]:
    plt = pyplot()
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
