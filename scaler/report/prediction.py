"""The prediction section: the simulated shared and pinned (or vm) curves on a named machine,
how much of their ratio each model term explains, the calibration's held-out validation
error, and every parameter of the model with its source (``extrapolate.extrapolate``
computes it; this module only shows it)."""

from __future__ import annotations

from typing import Any

from scaler.report.fmt import num
from scaler.report.html import badge, esc, facts, figure, note, table

TITLE = "Prediction on another machine"


def _validation(v: dict[str, Any]) -> str:
    if "refused" in v:
        return note(badge("partial", "no held-out validation") + " " + esc(v["refused"]))
    e = v["held_out_error"]
    verdict = (badge("ok", f"within the {e['target']:.0%} target") if e["within_target"]
               else badge("failed", f"NOT within the {e['target']:.0%} target"))
    out = note(f"Held-out validation on <code>{esc(', '.join(v['runs']))}</code>: the model "
               f"calibrated on N = {esc(', '.join(map(str, v['calibrated_on'])))} (plus the "
               "other calibration runs) predicts the other instance counts on the layouts they "
               f"ran with. Held-out throughput error: mean {e['mean_abs']:.1%}, max "
               f"{e['max_abs']:.1%} {verdict}.")
    rows = [[esc(p["placement"]), str(p["instances"]), esc(p["role"]),
             num(p["measured_ips"]), num(p["predicted_ips"]), f"{p['error']:+.1%}"]
            for p in v["points"]]
    return out + table(["placement", "N", "role", "measured images/s (median)",
                        "predicted images/s", "error"], rows, numeric=(1, 3, 4, 5))


def _explanation(x: dict[str, Any]) -> str:
    """The ratio at the largest N split among the model's terms (Shapley shares)."""
    study = x.get("study")
    head = (f"At N={x['at']} the model gives {x['ratio_at']:.2f}x; the layouts alone (every "
            f"cost term off) give {x['ratio_without_terms']:.2f}x.")
    if study:
        head += (f" The study: {study['ratio']:.2f}x at N={study['instances']}; the layouts "
                 f"alone are {x['layout_share_of_study']:.0%} of its log.")
    rows = [[f"<code>{esc(t['name'])}</code>", num(t["value"]), esc(t["source"]),
             f"{t['factor']:.3f}x",
             "-" if t["share_of_terms"] is None else f"{t['share_of_terms']:.0%}",
             "-" if t.get("share_of_study") is None else f"{t['share_of_study']:.0%}",
             f"{t['ratio_alone']:.2f}x", f"{t['ratio_without']:.2f}x"] for t in x["terms"]]
    idle = ", ".join(f"{t['name']}={t['value']:g} ({t['source']})"
                     for t in x.get("inactive_terms", []))
    return (note(esc(head)) + table(
        ["term", "value", "source", "factor", "of terms' change", "of the study's log",
         "ratio with it alone", "ratio without it"], rows, numeric=(1, 3, 4, 5, 6, 7))
        + note("factor: the term's Shapley share of the ratio (the factors multiply to the "
               "ratio over the layouts alone). A model figure, not a measurement."
               + (f" At their neutral value, explaining nothing: {esc(idle)}." if idle
                  else "")))


def section(result: dict[str, Any] | None, error: str | None = None) -> str:
    if error:
        return note(badge("failed", "not predicted") + " " + esc(error))
    if result is None:
        return note("Not asked for: <code>scaler report RUN... --machine 2s28c2t</code> adds "
                    "the simulated curves of a named machine (2s28c2t: the study's 2-socket, "
                    "28-core server with 2 threads per core).")
    from scaler.plots import scaling_figure

    m = result["machine_facts"]
    out = [note(badge("simulated", "simulated") + " A prediction from a model calibrated on "
                "this machine's runs, not a measurement."),
           facts([("machine", esc(f"{result['machine']}: {m['packages']} sockets, "
                                  f"{m['nodes']} NUMA nodes, {m['cores']} cores, "
                                  f"{m['cpus']} CPUs ({m['threads_per_core']} per core)")),
                  ("calibrated on", esc(", ".join(result["calibration_runs"]))),
                  ("fit", esc(f"{result['fit']['groups']} measured groups, rms error "
                              f"{(result['fit']['rms_log_error'] or 0):.1%} (log scale)")),
                  ("service-time shape", esc(result["service_time_shape"]))]),
           figure(scaling_figure([result["run"]]), f"simulated scaling on {result['machine']}",
                  f"Simulated aggregate images/s of shared and "
                  f"{esc(result.get('placement', 'pinned'))} instances on "
                  f"{esc(result['machine'])} (dashed, open markers: simulated).")]
    other = result.get("placement", "pinned")
    k = result.get("cores_per_instance")
    size = (f"{k} cores{' with SMT siblings' if result.get('smt') else ''} each" if k
            else "the machine shared out evenly")
    rows = [[str(r["instances"]), num(r["shared_ips"]), num(r["other_ips"]),
             f"{r['ratio']:.2f}x"] for r in result["ratios"]]
    out.append(table(["N", "shared images/s", f"{esc(other)} images/s ({esc(size)})",
                      f"{esc(other)} / shared (model: no interval)"], rows,
                     numeric=(0, 1, 2, 3)))
    out.append(note("The study measured 2.04x at N=8 (12-vCPU VMs over bare metal). A model "
                    "ratio has no interval of its own: read it with the validation error "
                    "below."))
    if result.get("explanation"):
        out.append("<h3>What each term explains</h3>" + _explanation(result["explanation"]))
    out.append("<h3>Validation</h3>" + _validation(result["validation"]))
    prow = [[f"<code>{esc(name)}</code>", num(p["value"]),
             badge({"measured": "ok", "given": "simulated"}.get(p["source"], "partial"),
                   p["source"]), esc(p["meaning"])]
            for name, p in result["parameters"].items()]
    out.append("<h3>Parameters (every assumption listed)</h3>")
    out.append(table(["parameter", "value", "source", "meaning"], prow, numeric=(1,)))
    why = result["fit"]["not_measured"]
    if why:
        out.append(note("Not measured by these runs, so assumed: " + "; ".join(
            f"<code>{esc(k)}</code> {esc(v)}" for k, v in why.items())))
    out.append("<h3>Not modelled</h3><ul>" + "".join(
        f"<li>{esc(t)}</li>" for t in result["not_modelled"]) + "</ul>")
    out.append(note("Change an assumption with <code>--assume NAME=VALUE</code> (e.g. "
                    "<code>core_speed=0.8</code>)."))
    return "\n".join(out)
