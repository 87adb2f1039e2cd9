"""The multistream section: per layout, the search for the largest batch whose conservative
latency at the statistic stays under the bound (every probe, pass or fail), and the figure
of latency and throughput against batch (``scaler.plots.multistream_figure``)."""

from __future__ import annotations

from scaler.report.fmt import flags, ips, ms
from scaler.report.html import badge, esc, figure, note, table
from scaler.report.inputs import Inputs
from scaler.results import Run
from scaler.summaries import multistream_results

TITLE = "Multistream search"


def _run_block(r: Run, name: str) -> str:
    from scaler.plots import multistream_figure

    req = r.doc.get("requested", {})
    eff = r.doc.get("effective", {})
    head = (f"<h3>{esc(name)} <small>({esc(r.path.name)}; {esc(eff.get('engine'))} "
            f"{esc(eff.get('precision'))} {esc(eff.get('model'))})</small></h3>")
    bound, stat = req.get("latency_bound_ms"), req.get("stat")
    results = multistream_results(r.doc)
    if not results:
        return head + note("No probe completed.")
    out = [head, figure(multistream_figure(r), f"multistream search of {name}",
                        f"Left: batch latency at {esc(stat)} against the bound "
                        f"{bound:g} ms; right: aggregate images/s with the 95% interval. "
                        "Hollow: noisy probes.")]
    rows = []
    for res in results:
        best = (f"batch {res['batch']}, {ms(res['latency_ms'])}" if res["meets_bound"]
                else badge("failed", "no batch meets the bound"))
        probes = " ".join(
            (badge("ok", f"{p['batch']}: {ms(p['decision_latency_ms'])}") if p["meets_bound"]
             else badge("failed", f"{p['batch']}: "
                        + ("stopped early" if p.get("stopped_early") else
                           ms(p["decision_latency_ms"]) if p["decision_latency_ms"] is not None
                           else "too few queries")))
            for p in sorted(res["probes"], key=lambda q: q["batch"]))
        rows.append([esc(res["layout"]), best, ips(res) if res["meets_bound"] else "-",
                     flags(res, r.doc), probes])
    out.append(table(["layout", "largest batch under the bound", "images/s [95% interval]",
                      "conditions", f"probes (batch: conservative {esc(stat)})"], rows,
                     numeric=(2,)))
    out.append(note(f"Bound: {bound:g} ms at {esc(stat)}, judged on LoadGen's early-stopping "
                    "(conservative) estimate; the search doubles the batch from 1, then "
                    "bisects between the last passing and the first failing batch."))
    return "\n".join(out)


def section(inputs: Inputs) -> str:
    runs = [r for r in inputs.runs if r.scenario == "multistream"]
    if not runs:
        return note("No multistream run among the inputs.")
    return "\n".join(_run_block(r, inputs.experiment(r)) for r in runs)
