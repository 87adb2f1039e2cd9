"""A capacity answer (``scaler.simulate.capacity.plan_capacity``) as lines of text: the
request, how its latency was estimated, and per cohort the recommendation, its notes and every
candidate with its verdict."""

from __future__ import annotations

from typing import Any

from scaler.simulate import capacity_styles as styles
from scaler.simulate.capacity_rows import CLOSED, PERCENT


def layout_text(a: dict[str, Any]) -> str:
    if a.get("unpinned"):
        each = "unpinned"
    elif a.get("cores_each") is None:
        each = "? cores"
    elif a["cores_each"] == a["cores_each_max"]:
        each = f"{a['cores_each']} core{'s' if a['cores_each'] != 1 else ''} each"
    else:
        each = f"{a['cores_each']}-{a['cores_each_max']} cores each"
    batch = f", batch {a['batch']}" if a.get("batch", 1) != 1 else ""
    return f"{a['instances']} x {styles.named(a['placement'], a)} ({each}{batch})"


def _pct(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0%}" if v >= 0.01 else f"{v:.1%}"


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _oversub_text(r: dict[str, Any]) -> str:
    if not r["oversubscribed"]:
        return "not oversubscribed"
    ratio = r.get("oversubscription")
    return ("OVERSUBSCRIBED" + (f" ({ratio:g}x the CPUs)" if ratio else "")
            + ": time-sliced")


def lines(answer: dict[str, Any]) -> list[str]:
    stat, bound = answer["stat"], answer["latency_bound_ms"]
    head = (f"capacity for {answer['target_ips']:g} images/s with {stat} <= {bound:g} ms, "
            f"keeping {answer['headroom']:.0%} headroom (utilisation <= "
            f"{1 - answer['headroom']:.0%})")
    out = [head, f"  latency: {_estimate_text(stat)}"]
    out += [f"  note: {p['run']} is partial: {'; '.join(map(str, p['reasons'])) or '?'}"
            for p in answer.get("partial_runs", [])]
    if len(answer["cohorts"]) > 1:
        out.append(f"  {len(answer['cohorts'])} groups of runs measured different things "
                   "(model, engine, precision, machine, measured or simulated): one answer "
                   "each, never ranked against each other")
    for c in answer["cohorts"]:
        out += [""] + _cohort_lines(c, stat)
    return out


def _estimate_text(stat: str) -> str:
    if stat == "mean":
        return "mean over all queries"
    from scaler.stats import early_stopping_min_queries

    need = early_stopping_min_queries(PERCENT[stat])
    if stat in ("p50", "p90", "p99"):
        return (f"conservative {stat} (LoadGen early stopping, 99% confidence: at least {need} "
                "queries; simulated runs: the plain percentile)")
    return f"plain {stat} over at least {need} queries (no conservative estimate for {stat})"


def _cohort_lines(c: dict[str, Any], stat: str) -> list[str]:
    kind = "" if c["simulated"] else "measured, "
    cpu = f" ({c['cpu_model']})" if c.get("cpu_model") and not c["simulated"] else ""
    cap = "" if c.get("isa_cap", "native") == "native" else f" (ISA capped at {c['isa_cap']})"
    out = [f"{c['model']} {c['engine']} {c['precision']}{cap} on {c['machine']}{cpu} [{kind}"
           f"{len(c['runs'])} run{'s' if len(c['runs']) != 1 else ''}]: {c['status']}"]
    b = c["recommendation"]
    if b is not None:
        interval = (f" [{b['ci95_ips'][0]:.1f}, {b['ci95_ips'][1]:.1f}], planned on the lower "
                    "end" if b["ci95_ips"] else "")
        unit = "requests/s" if b["kind"] != CLOSED else "images/s"
        out += [f"  recommended: {layout_text(b)}, {_oversub_text(b)}",
                f"    {b['kind']}: {b['throughput_ips']:.1f} {unit} per server{interval}, "
                f"{stat} {_ms(b['latency_ms'])} ms ({b['latency_estimate']}, "
                f"{b['samples']} queries)",
                f"    servers needed: {b['servers']}, utilisation {_pct(b['utilisation'])}, "
                f"headroom {_pct(b['headroom'])}"]
    out += [f"  note: {n}" for n in c["notes"]]
    out.append(f"  {'layout':<34} {'machine':<22} {'figure':<11} {'img/s':>9} "
               f"{stat + ' ms':>9} {'queries':>7} {'servers':>7}  verdict")
    for r in c["candidates"]:
        verdict = r["verdict"]
        if verdict == "cannot decide":
            verdict += f": {r['undecided']}"
        elif verdict == "oversubscribed":
            verdict += f" ({r['oversubscription']:g}x the CPUs)" if r.get(
                "oversubscription") else ""
        elif r["oversubscribed"]:
            verdict += ", oversubscribed"
        if r.get("noisy"):
            verdict += ", noisy"
        out.append(f"  {layout_text(r):<34} {r['machine']:<22} {r['kind']:<11} "
                   f"{_num(r['throughput_ips']):>9} {_ms(r['latency_ms']):>9} "
                   f"{r['samples']:>7} {_num(r['servers'], 'd'):>7}  {verdict}")
    return out


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"
