"""Plots: functions that take runs and return a matplotlib Figure (headless, Agg).

Emulated series (VMs without hardware virtualization) are not timing results: they are
refused beside real ones unless ``allow_emulated`` is given, and then drawn and labelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler import threadstyles
from scaler.errors import UsageError
from scaler.results import Run
from scaler.summaries import doc_points, multistream_results, scaling_series, server_results

FORMATS = ("png", "svg", "pdf")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def _marker(placement: str) -> str:
    from scaler.placements import find

    known = find(placement)
    return known.marker if known is not None else "d"


def placement_color(placement: str) -> str:
    """The same colour for a placement in every figure (registry order, then plug-ins)."""
    from scaler.placements import placements

    names = list(placements())
    k = names.index(placement) if placement in names else len(names) + hash(placement) % 3
    return f"C{k % 10}"


def run_labels(runs: list[Run], given: list[str] | None = None) -> dict[Path, str]:
    """A short label per run: the user's (``--label``, one per run), else what differs
    between the runs (engine and precision, model, machine, date), else the folder name;
    empty for a single run."""
    if given:
        if len(given) != len(runs):
            raise UsageError(f"--label given {len(given)} time(s) for {len(runs)} run(s): "
                             "give one per run, in order")
        return {r.path: label for r, label in zip(runs, given)}
    if len(runs) < 2:
        return {r.path: "" for r in runs}
    facets = {
        "engine": lambda r: f"{r.doc['effective']['engine']} {r.doc['effective']['precision']}",
        "model": lambda r: r.doc["effective"]["model"],
        "machine": lambda r: machine_name(r.doc["host"]),
        "date": lambda r: str(r.doc.get("created", ""))[:16].replace("T", " "),
    }
    differing = [f for f in facets.values() if len({f(r) for r in runs}) > 1]
    labels = {r.path: ", ".join(str(f(r)) for f in differing) for r in runs}
    kinds = [bool(r.doc.get("simulated")) for r in runs]
    if not differing and len(runs) == 2 and len(set(kinds)) == 2:
        return {r.path: "" for r in runs}  # a measurement and its simulation: [simulated] says it
    if len(set(labels.values())) < len(runs):  # nothing tells them apart: the folders do
        labels = {r.path: r.path.name for r in runs}
    return labels


def machine_name(host: dict[str, Any]) -> str:
    """A machine as a reader tells it apart: its CPU model, or for a run that did not record
    one, its host name said to be one (a host called ``vm`` is not the placement)."""
    return host.get("cpu_model") or f'host "{host.get("hostname", "?")}"'


def _series_label(s: dict[str, Any], run_label: str = "") -> str:
    label = f"{threadstyles.label(s)} ({s['engine']} {s['precision']})"
    if run_label:
        label += f" [{run_label}]"
    if s.get("simulated"):
        label += " [simulated]"
    return label + " [emulated]" if s.get("emulated") else label


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    labels = labels or run_labels(runs)
    series = [(r, s) for r in runs
              for s in scaling_series(r.doc["groups"], doc_points(r.doc))]
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
        marker = markers[run.path] if len(runs) > 1 else _marker(s["placement"])
        label = _series_label(s, labels.get(run.path, ""))
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
    ax.set_title(_title(runs, "scaling, batch 1"))
    for k, note in enumerate(notes):
        ax.text(0.01, 0.01 + 0.045 * k, note, transform=ax.transAxes, fontsize=7,
                color="dimgrey", va="bottom")
    _legend(ax, fontsize=8)
    return fig


def _legend(ax: Any, **kwargs: Any) -> None:
    """The axes' legend with one neutral "noisy" entry for all series (other entries kept
    as they are: two series may share a label and differ in colour)."""
    from matplotlib.lines import Line2D

    handles, labels, noisy = [], [], None
    for handle, label in zip(*ax.get_legend_handles_labels()):
        if label.startswith("noisy"):
            noisy = noisy or label
            continue
        handles.append(handle)
        labels.append(label)
    if noisy:
        handles.append(Line2D([], [], marker="o", color="black", markerfacecolor="white",
                              linestyle="none", markersize=8))
        labels.append(noisy)
    ax.legend(handles, labels, **kwargs)


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
    plt = _pyplot()
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
    ax.set_title(_title(runs, "latency percentiles"))
    ax.legend(fontsize=8)
    return fig


def _row_name(run: Run, p: dict[str, Any], labels: dict[Path, str]) -> str:
    name = f"{run.scenario}: {threadstyles.label(p)} x{p['instances']} batch {p['batch']}"
    return name + (f" [{labels[run.path]}]" if labels.get(run.path) else "")


def _latency_lines(runs: list[Run], rows: list[tuple[Run, dict[str, Any]]],
                   labels: dict[Path, str]) -> Any:
    """p50 and p99 against instances, a pair of lines per series (many points)."""
    plt = _pyplot()
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
    ax.set_title(_title(runs, "latency percentiles against instances"))
    ax.legend(fontsize=7)
    return fig


def multistream_figure(run: Run) -> Any:
    """Throughput and latency against batch for each layout, with the latency bound; the
    throughput carries its 95% interval across repeats, noisy probes are drawn hollow."""
    plt = _pyplot()
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
        _legend(ax, fontsize=8)
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


def throughput_figure(runs: list[Run], names: dict[Path, str] | None = None) -> Any:
    """Images/s of every point of throughput (and latency) runs as horizontal bars with their
    95% interval across repeats; noisy points hatched, emulated ones labelled."""
    plt = _pyplot()
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
    ax.set_title(_title(runs, "throughput"))
    if rows:
        fig.legend(fontsize=8, loc="outside lower center", ncols=2)
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

    plt = _pyplot()
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


def _title(runs: list[Run], what: str) -> str:
    """What was measured (model and engine: a null-engine run measured no model) and on what
    machine (its CPU model and core count, not only a host name)."""
    from scaler.engines.registry import engines as known

    engines = []
    for r in runs:
        eff = r.doc["effective"]
        kind = known().get(eff["engine"])
        engines.append(f"{eff['engine']} engine (no inference)" if kind and not kind.infers
                       else f"{eff['model']} {eff['engine']} {eff['precision']}")
    machines = []
    for r in runs:
        host = r.doc["host"]
        cores = (host.get("topology") or {}).get("cores")
        name = machine_name(host)
        machines.append(f"{name}, {cores} cores" if cores else name)
    return (f"{what}: {', '.join(dict.fromkeys(engines))}\n"
            f"on {'; '.join(dict.fromkeys(machines))}")


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
