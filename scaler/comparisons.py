"""Each placement against bare metal: the ratios of a run's series, with their intervals.

``baseline_comparisons`` sets every series against the baseline placement's series of the
same engine, precision and ``--threading`` style at every instance count measured in both;
``comparison_lines`` says them in a line per placement pair.
"""

from __future__ import annotations

from typing import Any

from scaler import significance
from scaler.threadstyles import label


def baseline_comparisons(series: list[dict[str, Any]], metric: str = "throughput_ips"
                         ) -> list[dict[str, Any]]:
    """Each placement over the baseline placement (bare metal) at every N measured in both
    and for the same engine and precision: the ratio of ``metric`` (images/s, or the mean
    latency in ms), its 95% interval and Welch's p-value across repeats
    (``scaler.significance.compare``)."""
    values = {"throughput_ips": "repeats_ips", "latency_mean_ms": "latency_mean_repeats"}[metric]
    from scaler.placements import baseline

    base = baseline()
    bases = {(s["engine"], s["precision"], s.get("threading"), s.get("isa_cap")): s
             for s in series if s["placement"] == base}
    ref = {k: {p["instances"]: p for p in s["points"]} for k, s in bases.items()}
    out = []
    for s in series:  # each style and ISA cap against bare metal under the same ones
        key = (s["engine"], s["precision"], s.get("threading"), s.get("isa_cap"))
        mine = ref.get(key)
        if s["placement"] == base or mine is None:
            continue
        for p in s["points"]:
            other = mine.get(p["instances"])
            if other is None:
                continue
            c = significance.compare(other[values], p[values])
            out.append({"metric": metric, "placement": label(s),
                        "baseline": label(bases[key]),
                        "threading": s.get("threading"), "isa_cap": s.get("isa_cap"),
                        "engine": s["engine"],
                        "precision": s["precision"], "instances": p["instances"],
                        "ratio": c["ratio"], "ci95": c["ci95"], "p_value": c["p_value"],
                        "significant": c["significant"],
                        "noisy": bool(p.get("noisy") or other.get("noisy"))})
    return out


def ratios_over_baseline(comparisons: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{"pinned_over_shared": {"1": 1.04, ...}}``: the bare ratios of the comparisons (kept
    for readers of earlier summaries; the comparisons say whether each is a finding)."""
    out: dict[str, dict[str, float]] = {}
    for c in comparisons:
        if c["ratio"] is not None:
            out.setdefault(f"{c['placement']}_over_{c['baseline']}", {})[
                str(c["instances"])] = c["ratio"]
    return out


def comparison_lines(comparisons: list[dict[str, Any]], indent: str,
                     what: str = "") -> list[str]:
    """``pinned/shared: N=1 ~ (1.02x [0.95, 1.09]) ...`` per placement pair."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in comparisons:
        by.setdefault((c["placement"], c["baseline"]), []).append(c)
    label = f" {what}" if what else ""
    out = []
    for (top, base), rows in by.items():
        bare = all(c.get("ci95") is None for c in rows)
        cells = [f"N={c['instances']} "
                 + (f"{c['ratio']:.2f}x" if bare and c.get("ratio") is not None
                    else significance.verdict(c))
                 + (" noisy" if c.get("noisy") else "") for c in rows]
        head = f"{indent}{top}/{base}{label}"
        if bare:
            head += " (one repeat: no intervals, not findings)"
        out.append(f"{head}: " + "  ".join(cells))
    return out
