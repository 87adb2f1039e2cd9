"""The scaling section: aggregate images/s against instances per placement, with the 95%
intervals across repeats, the ideal line, the USL fit and the oversubscribed region
(``scaler.plots.scaling_figure``), the table of every point and the comparisons with bare
metal. Emulated series (VMs under TCG) get a figure of their own: they are not timing
results and are never drawn beside real ones."""

from __future__ import annotations

from scaler.report.fmt import flags, ips, ms, num, ratio
from scaler.report.html import badge, esc, figure, note, table
from scaler.report.inputs import Inputs
from scaler.results import Run
from scaler.summaries import baseline_comparisons, doc_points, scaling_series
from scaler.threadstyles import label as series_label

TITLE = "Scaling"


def _split(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """Runs whose series are timing results (measured or simulated), and emulated runs."""
    real, emulated = [], []
    for r in runs:
        series = scaling_series(r.doc.get("groups", []), doc_points(r.doc))
        (emulated if series and all(s.get("emulated") for s in series) else real).append(r)
    return real, emulated


def _points_table(r: Run, name: str) -> str:
    series = scaling_series(r.doc.get("groups", []), doc_points(r.doc))
    rows = []
    for s in series:
        for p in sorted(s["points"], key=lambda q: q["instances"]):
            per = p.get("per_instance_ips") or []
            rows.append([esc(f"{series_label(s)} ({s['engine']} {s['precision']})"),
                         str(p["instances"]), ips(p), str(len(p.get("repeats_ips") or [])),
                         esc(" + ".join(num(v) for v in per if v is not None)) or "-",
                         ms(p["latency_ms"].get("p50")), ms(p["latency_ms"].get("p99")),
                         flags({**p, "emulated": s.get("emulated"),
                                "simulated": s.get("simulated")}, r.doc)])
    out = f"<h3>{esc(name)} <small>({esc(r.path.name)})</small></h3>"
    out += table(["series", "N", "images/s [95% interval]", "repeats",
                  "per instance (median repeat)", "p50", "p99", "conditions"], rows,
                 numeric=(1, 2, 3, 5, 6))
    comparisons = baseline_comparisons(series)
    if comparisons:
        crow = [[esc(f"{c['placement']} / {c['baseline']}"), esc(f"{c['engine']} "
                                                                 f"{c['precision']}"),
                 str(c["instances"]), ratio(c),
                 "-" if c.get("p_value") is None else f"{c['p_value']:.2g}",
                 badge("noisy", "noisy") if c.get("noisy") else ""]
                for c in comparisons]
        out += table(["ratio", "engine", "N", "images/s ratio [95% interval]", "p-value",
                      "conditions"], crow, numeric=(2, 3, 4))
    return out


def section(inputs: Inputs) -> str:
    from scaler.plots import scaling_figure

    runs = [r for r in inputs.runs if r.scenario == "scaling"]
    if not runs:
        return note("No scaling run among the inputs.")
    real, emulated = _split(runs)
    out = []
    caption = ("Median images/s across repeats with the 95% interval as error bars; hollow "
               "markers: noisy points (others used more than 5% of their CPUs); dotted: ideal "
               "linear scaling from N=1; shaded: oversubscribed (more instances than cores); "
               "solid band: the Universal Scalability Law fit (measured series of 4+ points); "
               "dashed with open markers: simulated series.")
    # one figure per engine, precision and model: a null-engine run's millions of images/s
    # would flatten a ResNet50 curve drawn on the same axes
    kinds: dict[tuple[str, str, str], list[Run]] = {}
    for r in real:
        e = r.doc.get("effective", {})
        kinds.setdefault((e.get("engine"), e.get("precision"), e.get("model")), []).append(r)
    for (engine, precision, model), group in kinds.items():
        what = f" ({engine} {precision} {model})" if len(kinds) > 1 else ""
        out.append(figure(scaling_figure(group), "scaling curves", caption + what))
    if emulated:
        out.append(figure(scaling_figure(emulated, allow_emulated=True),
                          "emulated scaling curves",
                          badge("emulated", "emulated") + " VMs under TCG emulation (no "
                          "hardware virtualization here): about 100x slower than real VMs; "
                          "shown apart, never as timing results."))
    for r in runs:
        out.append(_points_table(r, inputs.experiment(r)))
    return "\n".join(out)
