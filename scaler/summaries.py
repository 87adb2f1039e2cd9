"""The summary of a run as the ``--json`` output of its command (stable keys), and as lines.

Computed from the run document alone, so ``scaler show`` gives the same summary as the command
that made the run. Every figure is a point across its repeats (``scaler.points``): the median
with its 95% interval, the repeat values, and the conditions it was taken in (``noisy``,
``others_cpu_share``, ``unstable``). Formatting returns lines; printing happens at the CLI
edge.
"""

from __future__ import annotations

import re
from typing import Any

from scaler import points as points_mod
from scaler import schema
from scaler.comparisons import baseline_comparisons, comparison_lines, ratios_over_baseline
from scaler.engines.kernels import run_kernels
from scaler.speedprobe import contention_flags
from scaler.threadreport import thread_lines
from scaler.threadstyles import label

LAT_KEYS = ("mean", "p50", "p90", "p99", "p99.9")
FIGURE_KEYS = ("throughput_ips", "ci95_ips", "repeats_ips", "noisy", "others_cpu_share",
               "unstable", "contended", "remeasured")


def _lat(point: dict[str, Any], keys: tuple[str, ...] = LAT_KEYS) -> dict[str, float | None]:
    lat = point.get("latency_ms") or {}
    return {k: lat.get(k) for k in keys}


def _figures(point: dict[str, Any]) -> dict[str, Any]:
    return {k: point.get(k) for k in FIGURE_KEYS}


def doc_points(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's points: saved with the run, or rebuilt from its groups (older or simulated
    documents, whose latency is then the group's own)."""
    saved = doc.get("points")
    return saved if saved is not None else points_mod.aggregate(doc.get("groups", []))


def status_of(doc: dict[str, Any]) -> str:
    """The run's status; a run left ``running`` by a process that is gone reads ``partial``
    (``scaler.runstate``, with the reason ``summarize`` adds)."""
    from scaler import runstate

    return str(runstate.effective(doc, None).get("status", "?"))


def writer_gone(doc: dict[str, Any]) -> bool:
    from scaler import runstate

    return runstate.writer_gone(doc)


def summarize(doc: dict[str, Any], path: str) -> dict[str, Any]:
    from pathlib import Path

    from scaler import runstate

    doc = runstate.effective(doc, Path(path))  # a coordinator gone: partial, saying why
    run = schema.Run.top(doc)
    pts = doc_points(doc)
    groups = doc.get("groups", [])
    out: dict[str, Any] = {"run": path, "scenario": run.scenario, "status": status_of(doc),
                           "engine": run.effective.engine,
                           "precision": run.effective.precision,
                           "model": run.effective.model,
                           "emulated": doc.get("emulated", False),
                           "repeats": run.requested.get("repeat", 1)}
    out.update({k: v for k, v in (("partial_reasons", run.partial_reasons),
                                  ("notes", run.notes), ("simulated", run.simulated)) if v})
    if kernel_lines := run_kernels(groups):
        out["kernels"] = kernel_lines
    scenario = run.scenario
    if scenario in ("latency", "throughput"):
        # one instance per placement: a result each; the first one's keys at the top too
        results = [_single(p) for p in pts if p.get("complete")] or [_single({})]
        out.update(results[0], results=results)
        if scenario == "throughput":
            out["batch"] = results[0].get("batch") or run.requested.batch
        series = scaling_series(groups, pts)
        out["comparisons"] = baseline_comparisons(series)
        if scenario == "latency":
            out["latency_comparisons"] = baseline_comparisons(series, "latency_mean_ms")
    elif scenario == "scaling":
        out["series"] = scaling_series(groups, pts)
        out["comparisons"] = baseline_comparisons(out["series"])
        out.update(ratios_over_baseline(out["comparisons"]))
    elif scenario == "multistream":
        out.update(latency_bound_ms=run.requested.latency_bound_ms,
                   stat=run.requested.stat, results=multistream_results(doc))
    elif scenario == "server":
        out.update(latency_bound_ms=run.requested.latency_bound_ms,
                   stat=run.requested.stat, **server_results(doc, pts))
    out["threads"] = thread_lines(groups)  # stacking and spin, per group
    return out


def server_results(doc: dict[str, Any], pts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per layout and offered rate: the rate achieved, latency from arrival, the
    generator's lag and validity; with a peak search, the highest passing rate per layout."""
    stat, bound = (asked := schema.Run.top(doc).requested).stat, asked.latency_bound_ms
    results = []
    peaks: dict[str, float | None] = {}
    for p in pts:
        if p.get("target_qps") is None:
            continue
        lat = p.get("latency_ms") or {}
        decided = points_mod.decision_latency(lat, stat)
        meets = bool(p.get("valid") and not p.get("bound_failed") and decided is not None
                     and decided <= bound)
        layout = f"{label(p)} x{p['instances']}"
        results.append({
            "placement": p["placement"], "instances": p["instances"], "layout": layout,
            "target_qps": p["target_qps"], "achieved_qps": p.get("achieved_qps"),
            "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99")},
            "early_stopping_p99_ms": (lat.get("early_stopping") or {}).get("p99"),
            "generator_lag_ms": {"p99": p.get("generator_lag_p99_ms")},
            "valid": bool(p.get("valid")), "invalid_reasons": p.get("invalid_reasons", []),
            "meets_bound": meets, "stopped_early": bool(p.get("bound_failed")),
            **_figures(p)})
        if p.get("probe"):
            best = peaks.get(layout)
            if meets and (best is None or p["target_qps"] > best):
                peaks[layout] = p["target_qps"]
            else:
                peaks.setdefault(layout, None)
    out: dict[str, Any] = {"results": results, "harness": [
        h for h in doc.get("harness") or [] if h.get("kind") == "at_rate"]}
    if peaks:
        out["peak_qps"] = peaks
        out["searches"] = doc.get("searches") or {}
    return out


def _single(p: dict[str, Any]) -> dict[str, Any]:
    """A latency or throughput result: one instance of one placement across repeats."""
    lat = p.get("latency_ms") or {}
    return {"placement": p.get("placement"), "threading": p.get("threading"),
            "label": label(p), "batch": p.get("batch"), "latency_ms": _lat(p),
            "samples": lat.get("samples", 0), "queries": lat.get("samples", 0),
            "early_stopping_ms": lat.get("early_stopping"),
            "latency_repeats": p.get("latency_repeats", []),
            "warnings": p.get("warnings", []), **_figures(p)}


def scaling_series(groups: list[dict[str, Any]],
                   pts: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Points grouped by series (placement x engine x precision), each with its figures."""
    series: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in (pts if pts is not None else points_mod.aggregate(groups)):
        if not p.get("complete"):
            continue
        key = (p["placement"], p.get("engine"), p.get("precision"), p.get("threading"),
               p.get("isa_cap"))
        s = series.setdefault(key, {"placement": key[0], "engine": key[1], "precision": key[2],
                                    "threading": key[3], "isa_cap": key[4], "label": label(p),
                                    "series": label(p),
                                    "emulated": bool(p.get("emulated")),
                                    "simulated": bool(p.get("simulated")), "points": []})
        entry = {"instances": p["instances"], **_figures(p),
                 "latency_mean_repeats": [r.get("mean") for r in p.get("latency_repeats", [])],
                 "min_ips": p.get("min_ips"), "max_ips": p.get("max_ips"),
                 "per_instance_ips": p.get("per_instance_ips", []),
                 "latency_ms": _lat(p, ("p50", "p99")),
                 "oversubscribed": p.get("oversubscribed"),
                 "warnings": p.get("warnings", [])}
        if p.get("per_host_ips"):  # --hosts: images/s of each machine
            entry["per_host_ips"] = p["per_host_ips"]
        s["points"].append(entry)
    return list(series.values())


def multistream_results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per layout: the largest batch whose conservative latency at the statistic met the
    bound, its throughput across repeats, and every probe."""
    stat, bound = (asked := schema.Run.top(doc).requested).stat, asked.latency_bound_ms
    out = []
    probes_by: dict[str, list[dict[str, Any]]] = {}
    for p in doc_points(doc):
        if p.get("layout"):
            probes_by.setdefault(p["layout"], []).append(p)
    for layout, probes in probes_by.items():
        rows = []
        for p in sorted(probes, key=lambda q: q["batch"]):
            decided = points_mod.decision_latency(p.get("latency_ms") or {}, stat)
            failed_early = any(g.get("bound_failed") for g in doc.get("groups", [])
                               if g.get("id") in p.get("groups", []))
            meets = (p.get("complete") == p.get("repeats") and not failed_early
                     and decided is not None and decided <= bound)
            rows.append({"batch": p["batch"], "latency_ms": (p.get("latency_ms") or {}).get(stat),
                         "decision_latency_ms": decided, "meets_bound": meets,
                         "stopped_early": failed_early, "samples":
                             (p.get("latency_ms") or {}).get("samples", 0), **_figures(p)})
        fits = [r for r in rows if r["meets_bound"]]
        best = max(fits, key=lambda r: r["batch"]) if fits else None
        out.append({
            "placement": probes[0].get("placement"), "layout": layout,
            "instances": probes[0].get("instances"),
            "batch": best["batch"] if best else None,
            "latency_ms": best["decision_latency_ms"] if best else None,
            "meets_bound": best is not None,
            **(_figures(best) if best else dict.fromkeys(FIGURE_KEYS)),
            "probes": rows,
        })
    return out


# -- lines --------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.1f} µs" if v < 1 else f"{v:.2f} ms"


def _ips(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def figure(p: dict[str, Any], unit: str = "images/s") -> str:
    """``23.4 images/s [22.9, 23.8] (3 repeats)``, with the conditions that weaken it."""
    value = p.get("throughput_ips")
    if value is None:
        return "-"
    text = f"{value:.1f} {unit}"
    interval = p.get("ci95_ips")
    repeats = p.get("repeats_ips") or []
    if interval:
        text += f" [{interval[0]:.1f}, {interval[1]:.1f}] ({len(repeats)} repeats)"
    flags = []
    if p.get("noisy"):
        flags.append(f"NOISY: others used {p.get('others_cpu_share') or 0:.0%} of its CPUs")
    if p.get("unstable"):
        flags.append("UNSTABLE: repeats vary > 5%")
    flags += contention_flags(p)
    return text + (f"  [{'; '.join(flags)}]" if flags else "")


_THIN = re.compile(r"^(p[\d.]+) from (\d+) queries: fewer than the (\d+) ")


def point_notes(points: list[tuple[str, dict[str, Any]]], indent: str) -> list[str]:
    """The points' warnings, one line each: percentiles from too few queries are gathered
    into one line per percentile (``p99 needs 662 queries: shared N=1 has 21, ...``)."""
    thin: dict[tuple[str, str], list[str]] = {}
    other: dict[str, list[str]] = {}
    for where, p in points:
        for w in p.get("warnings", []):
            m = _THIN.match(w)
            if m:
                thin.setdefault((m.group(1), m.group(3)), []).append(f"{where} has {m.group(2)}")
            else:
                other.setdefault(w, []).append(where)
    out = []
    for (pct, need), where in thin.items():
        everyone = len(where) == len(points) and len(points) > 1
        who = "every point has fewer" if everyone else ", ".join(where)
        out.append(f"{indent}note: {pct} needs {need} queries to be bounded at 99% "
                   f"confidence (LoadGen's early stopping): {who}")
    out += [f"{indent}note ({', '.join(where)}): {w}" for w, where in other.items()]
    return out


def _latency_lines(r: dict[str, Any], named: bool) -> list[str]:
    lat = r["latency_ms"]
    head = f"  {r.get('label') or r['placement']}: " if named else "  "
    out = [head + "latency: " + "  ".join(f"{k} {_ms(lat[k])}" for k in LAT_KEYS)
           + f"  ({r['samples']} samples)"]
    early = r.get("early_stopping_ms") or {}
    if early:
        out.append("    conservative (early stopping, 99% confidence): " + "  ".join(
            f"{k} {_ms(v) if v is not None else 'needs more queries'}" for k, v in early.items()))
    spread = r.get("latency_repeats") or []
    if len(spread) > 1:
        out.append("    per repeat: " + "  ".join(
            f"p50 {_ms(x['p50'])} p99 {_ms(x['p99'])}" for x in spread))
    out.append(f"    rate: {figure(r, 'queries/s')}")
    out += [f"    note: {w}" for w in r.get("warnings", [])]
    return out


def lines(summary: dict[str, Any]) -> list[str]:
    """A human-readable summary."""
    head = (f"{summary['scenario']}: {summary['engine']} {summary['precision']} "
            f"{summary['model']}  [{summary['status']}]"
            + ("  [simulated]" if summary.get("simulated") else ""))
    out = [head, f"  run: {summary['run']}"]
    for reason in summary.get("partial_reasons", []):
        out.append(f"  partial: {reason}")
    out += [f"  note: {n}" for n in summary.get("notes", [])]
    out += [f"  kernels: {k}" for k in summary.get("kernels", [])]
    out += [f"  {line}" for line in summary.get("threads", [])]
    scenario = summary["scenario"]
    if scenario == "latency":
        for r in summary.get("results") or [summary]:
            out += _latency_lines(r, len(summary.get("results") or [1]) > 1)
        out += comparison_lines(summary.get("latency_comparisons", []), "  ",
                                "mean latency")
    elif scenario == "throughput":
        for r in summary.get("results") or [summary]:
            named = len(summary.get("results") or [1]) > 1
            where = f"{r.get('label') or r['placement']}, " if named else ""
            out.append(f"  {where}batch {summary['batch']}: {figure(r)} "
                       f"({r['queries']} batches)")
            out += [f"  note: {w}" for w in r.get("warnings", [])]
        out += comparison_lines(summary.get("comparisons", []), "  ")
    elif scenario == "scaling":
        for s in summary["series"]:
            out.append(f"  {label(s)} ({s['engine']} {s['precision']}):")
            for p in s["points"]:
                flag = "  oversubscribed" if p["oversubscribed"] else ""
                out.append(f"    N={p['instances']:<3} {figure(p)}"
                           f"  p50 {_ms(p['latency_ms']['p50'])}"
                           f"  p99 {_ms(p['latency_ms']['p99'])}{flag}")
                if p.get("per_host_ips"):
                    out.append("          per host: " + ", ".join(
                        f"{h} {_ips(v)}" for h, v in p["per_host_ips"].items()))
        out += point_notes([(f"{label(s)} N={p['instances']}", p)
                            for s in summary["series"] for p in s["points"]], "  ")
        out += comparison_lines(summary.get("comparisons", []), "  ")
    elif scenario == "server":
        out.append(f"  bound {summary['latency_bound_ms']:g} ms at {summary['stat']} "
                   "(conservative estimate), latency from each request's scheduled arrival")
        for r in summary["results"]:
            lat = r["latency_ms"]
            verdict = ("meets the bound" if r["meets_bound"] else
                       "stopped early: over the bound" if r["stopped_early"] else
                       "misses the bound")
            validity = "" if r["valid"] else f"  INVALID: {'; '.join(r['invalid_reasons'])}"
            out.append(f"  {r['layout']} at {r['target_qps']:g} qps: achieved "
                       f"{_ips(r['achieved_qps'])} qps, p50 {_ms(lat['p50'])}, p99 "
                       f"{_ms(lat['p99'])} (conservative {_ms(r['early_stopping_p99_ms'])}), "
                       f"generator lag p99 {_ms(r['generator_lag_ms']['p99'])}: "
                       f"{verdict}{validity}")
        for h in summary.get("harness") or []:
            share = h.get("share_of_measured_p50")
            out.append(f"  harness alone (null engine) {h['layout']} at {h['target_qps']:g} "
                       f"qps: p50 {_ms((h.get('latency_ms') or {}).get('p50'))}, p99 "
                       f"{_ms((h.get('latency_ms') or {}).get('p99'))}" +
                       (f", {100 * share:.1f}% of the measured p50" if share else ""))
        for layout, peak in (summary.get("peak_qps") or {}).items():
            found = (summary.get("searches") or {}).get(layout) or {}
            low = found.get("lowest_latency_ms")
            out.append(f"  peak {layout}: " + (
                f"{peak:g} qps" if peak is not None else
                f"no rate down to {found['floor_qps']:g} qps meets the bound (at "
                f"{found['lowest_qps']:g} qps: {summary['stat']} {_ms(low)})"
                if found.get("lowest_qps") is not None else "no rate tried meets the bound"))
    elif scenario == "multistream":
        out.append(f"  bound {summary['latency_bound_ms']:g} ms at {summary['stat']} "
                   "(conservative estimate)")
        for r in summary["results"]:
            if r["meets_bound"]:
                out.append(f"  {r['layout']}: batch {r['batch']}  {_ms(r['latency_ms'])}  "
                           f"{figure(r)}")
            else:
                first = r["probes"][0] if r["probes"] else {}
                out.append(f"  {r['layout']}: no batch meets the bound (batch 1: "
                           f"{_ms(first.get('decision_latency_ms') or first.get('latency_ms'))})")
    return out


def headline(suite: dict[str, Any]) -> list[str]:
    """The figures a reader of a suite wants first, a few lines per experiment."""
    out = [f"suite: {suite['run']}"]
    for name, summary in suite.items():
        if not isinstance(summary, dict) or "scenario" not in summary:
            continue
        scenario = summary["scenario"]
        what = f"{summary['engine']} {summary['precision']}"
        if scenario == "latency":
            for r in summary.get("results", []):
                ms = r["latency_ms"]
                out.append(f"  {name} ({r['placement']}, {what}, batch 1): p50 {_ms(ms['p50'])}, "
                           f"p99 {_ms(ms['p99'])}")
            out += comparison_lines(summary.get("latency_comparisons", []), "    ",
                                    "mean latency")
        elif scenario == "throughput":
            for r in summary.get("results", []):
                out.append(f"  {name} ({r['placement']}, {what}, batch {summary['batch']}): "
                           f"{figure(r)}")
        elif scenario == "scaling":
            for s in summary["series"]:
                pts = "  ".join(f"N={p['instances']} {_ips(p['throughput_ips'])}"
                                + ("*" if p.get("noisy") else "") for p in s["points"])
                out.append(f"  {name} {label(s)} ({what}; images/s, * noisy): {pts}")
            out += comparison_lines(summary.get("comparisons", []), "    ")
        elif scenario == "multistream":
            for r in summary["results"]:
                got = (f"batch {r['batch']} at {_ms(r['latency_ms'])}, {figure(r)}"
                       if r["meets_bound"] else "no batch meets the bound")
                out.append(f"  {name} {r['layout']} ({what}, bound "
                           f"{summary['latency_bound_ms']:g} ms {summary['stat']}): {got}")
    return out
