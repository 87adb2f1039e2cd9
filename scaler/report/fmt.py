"""Numbers and conditions as the report writes them: figures with their intervals, latencies
in the unit that reads best, and badges for what weakens a figure (noisy, unstable,
oversubscribed, emulated, simulated, incomplete)."""

from __future__ import annotations

from typing import Any

from scaler.report.html import badge, esc


def num(value: float | None) -> str:
    """A rate or count with a sensible number of digits; '-' for none."""
    if value is None:
        return "-"
    v = float(value)
    if abs(v) >= 1e7:
        return f"{v:.3e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ms(value: float | None) -> str:
    """A latency in ms, shown in µs below 1 ms."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.3g} µs"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.2f} ms" if value < 100 else f"{value:.1f} ms"


def ips(p: dict[str, Any]) -> str:
    """``median [low, high]`` across repeats (HTML-safe)."""
    value = p.get("throughput_ips")
    if value is None:
        return "-"
    ci = p.get("ci95_ips")
    return num(value) + (f" [{num(ci[0])}, {num(ci[1])}]" if ci else "")


def ratio(c: dict[str, Any]) -> str:
    """A comparison B/A with its interval, and "~" where the interval includes 1."""
    if c.get("ratio") is None:
        return "-"
    text = f"{c['ratio']:.2f}x"
    ci = c.get("ci95")
    if ci:
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        if not c.get("significant"):
            return f"~ ({text}) " + badge("none", "no measurable difference")
        return text + " " + badge("ok", f"significant, p={c.get('p_value', 0):.2g}")
    return text + " " + badge("none", "one repeat: not a finding")


def flags(p: dict[str, Any], doc: dict[str, Any] | None = None) -> str:
    """Badges for the conditions of a point or group."""
    doc = doc or {}
    out = []
    if p.get("noisy"):
        share = p.get("others_cpu_share")
        out.append(badge("noisy", "noisy", f"others used {share or 0:.0%} of its CPUs"))
    if p.get("unstable"):
        cv = p.get("cv")
        out.append(badge("unstable", "unstable",
                         f"repeats vary by {cv:.0%} (> 5%)" if cv else "repeats vary > 5%"))
    if p.get("contended"):
        out.append(badge("noisy", "contended", "a window's speed probe ran > 10% below the "
                         "run's idle speed (re-measures kept in run.json)"))
    if p.get("oversubscribed"):
        out.append(badge("oversub", "oversubscribed", "more instances than cores"))
    if p.get("emulated") or doc.get("emulated"):
        out.append(badge("emulated", "emulated",
                         "VM under TCG emulation (no hardware virtualization): not a timing "
                         "result"))
    if p.get("simulated") or doc.get("simulated"):
        out.append(badge("simulated", "simulated", "a prediction, not a measurement"))
    repeats, complete = p.get("repeats"), p.get("complete")
    if repeats is not None and complete is not None and complete < repeats:
        out.append(badge("partial", f"{complete}/{repeats} repeats complete"))
    return " ".join(out)


def status(doc: dict[str, Any]) -> str:
    s = doc.get("status", "?")
    kind = "ok" if s == "complete" else "partial"
    reasons = "; ".join(doc.get("partial_reasons") or [])
    return badge(kind, s, reasons) + (f" {esc(reasons)}" if reasons else "")
