"""The claims section: each of the study's four figures beside this machine's, with its 95%
interval, the verdict and why the two may differ (``suite.json`` of each suite given)."""

from __future__ import annotations

from typing import Any

from scaler.report.html import badge, esc, note, table
from scaler.report.inputs import Inputs

TITLE = "Claims: the study beside this machine"


def measured(c: dict[str, Any]) -> str:
    """This machine's figure with its interval, in the claim's unit."""
    value, ci = c.get("measured"), c.get("ci95")
    if value is None:
        return badge("none", "not measured")
    if str(c.get("unit", "")).startswith("%"):
        text = f"{value:+.1f}%"
        return text + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
    text = f"{value:.2f}x"
    return text + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def study(c: dict[str, Any]) -> str:
    if c.get("study") is None:
        return "-"
    return f"{c['study']:g}%" if str(c.get("unit", "")).startswith("%") else f"{c['study']:g}x"


def verdict(c: dict[str, Any]) -> str:
    text = str(c.get("verdict", ""))
    if text.startswith(("consistent", "within")):
        kind = "ok"
    elif text.startswith("differs"):
        kind = "failed"
    elif text.startswith("not measured"):
        kind = "none"
    else:
        kind = "partial"
    return badge(kind, text, wrap=True)


def _row(c: dict[str, Any]) -> list[str]:
    p = c.get("p_value")
    cond = badge("noisy", "noisy", "a side was measured while others used > 5% of its CPUs") \
        if c.get("noisy") else ""
    if c.get("contended"):
        cond += (" " if cond else "") + badge(
            "noisy", "contended", "a side rests on a window whose speed probe ran > 10% below "
            "the run's idle speed")
    here, why = measured(c), esc(c.get("note") or "")
    if c.get("against"):
        here += f"<br><small>against {esc(c['against'])}</small>"
    tuned = c.get("tuned")
    if tuned:  # the comparison with tuned bare metal, beside the study's
        here += ("<br>over tuned bare metal: " + measured(tuned) + " "
                 + verdict({"verdict": tuned.get("verdict", "not measured")}))
    if c.get("study_missing"):
        why += ("<br>" if why else "") + ("against the study's bare metal: not measured: "
                                          + esc(c["study_missing"]))
    return [f"<b>{esc(c.get('test'))}</b><br>{esc(c.get('what'))}", study(c), here,
            verdict(c) + (" " + cond if cond else ""), esc(c.get("compared", "-")),
            "-" if p is None else f"{p:.2g}", why]


def section(inputs: Inputs) -> str:
    with_claims = [s for s in inputs.suites if s.doc and s.doc.get("claims")]
    if not with_claims:
        return note("No <code>suite.json</code> among the inputs (give a folder written by "
                    "<code>scaler suite</code>): no claims table.")
    out = []
    for s in with_claims:
        if len(with_claims) > 1:
            out.append(f"<h3>{esc(s.path.name)}</h3>")
        out.append(table(["the study's test", "study", "here [95% interval]", "verdict",
                          "compared", "p-value", "why they may differ"],
                         [_row(c) for c in s.doc["claims"]], numeric=(1, 2, 5)))
        skipped = {k: v for k, v in (s.doc.get("skipped") or {}).items() if v}
        if skipped:
            out.append(note("Left out of this suite: " + "; ".join(
                f"<b>{esc(k)}</b>: {esc(v)}" for k, v in skipped.items())))
    out.append(note(
        "Intervals are 95% across repeats (Welch on log values); a ratio whose interval "
        "includes 1 (0% for latency) is no measurable difference, never a finding. The "
        "study: ResNet50 on 2-socket Xeon servers, bare metal against VMs."))
    return "\n".join(out)
