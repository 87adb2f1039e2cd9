"""The summary of a run as the ``--json`` output of its command (stable keys), and as lines.

Computed from the run document alone, so ``scaler show`` gives the same summary as the command
that made the run. Formatting returns lines; printing happens at the CLI edge.
"""

from __future__ import annotations

from typing import Any

LAT_KEYS = ("mean", "p50", "p90", "p99", "p99.9")


def _lat(group: dict[str, Any], keys: tuple[str, ...] = LAT_KEYS) -> dict[str, float | None]:
    lat = group.get("latency_ms") or {}
    return {k: lat.get(k) for k in keys}


def _complete(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [g for g in groups if g.get("status") == "complete"]


def summarize(doc: dict[str, Any], path: str) -> dict[str, Any]:
    groups = doc.get("groups", [])
    ok = _complete(groups)
    out: dict[str, Any] = {"run": path, "scenario": doc["scenario"], "status": doc["status"],
                           "engine": doc["effective"]["engine"],
                           "precision": doc["effective"]["precision"],
                           "model": doc["effective"]["model"], "emulated": doc.get("emulated",
                                                                                    False)}
    if doc.get("partial_reasons"):
        out["partial_reasons"] = doc["partial_reasons"]
    if doc.get("simulated"):
        out["simulated"] = True
    scenario = doc["scenario"]
    if scenario == "latency":
        g = ok[0] if ok else {}
        out.update(latency_ms=_lat(g), samples=g.get("queries", 0),
                   placement=g.get("placement"), warnings=g.get("warnings", []))
    elif scenario == "throughput":
        g = ok[0] if ok else {}
        out.update(batch=g.get("batch", doc["requested"]["batch"]),
                   throughput_ips=g.get("throughput_ips"), placement=g.get("placement"),
                   latency_ms=_lat(g, ("mean", "p50", "p99")), queries=g.get("queries", 0))
    elif scenario == "scaling":
        out["series"] = scaling_series(groups)
        out.update(ratios_over_baseline(out["series"]))
    elif scenario == "multistream":
        out.update(latency_bound_ms=doc["requested"]["latency_bound_ms"],
                   stat=doc["requested"]["stat"], results=multistream_results(doc))
    return out


def scaling_series(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for g in _complete(groups):
        key = (g["placement"], g["engine"], g["precision"])
        s = series.setdefault(key, {"placement": key[0], "engine": key[1], "precision": key[2],
                                    "emulated": g.get("emulated", False),
                                    "simulated": g.get("simulated", False), "points": []})
        s["points"].append({
            "instances": g["instances"], "throughput_ips": g.get("throughput_ips"),
            "per_instance_ips": [i.get("throughput_ips") for i in g["per_instance"]],
            "latency_ms": _lat(g, ("p50", "p99")), "oversubscribed": g.get("oversubscribed"),
        })
        if g.get("per_host"):  # --hosts: images/s of each machine
            s["points"][-1]["per_host_ips"] = {h: v.get("throughput_ips")
                                               for h, v in g["per_host"].items()}
    return list(series.values())


def ratios_over_baseline(series: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Aggregate throughput of each placement over the baseline placement's (bare metal) at
    each N measured in both: ``{"pinned_over_shared": {"1": 1.04, ...}, ...}``. Keyed by the
    placements present in the series (a run without the baseline gets empty ratios)."""
    from scaler.placements import baseline

    base = baseline()
    by = {s["placement"]: {p["instances"]: p["throughput_ips"] for p in s["points"]}
          for s in series}
    ref = by.get(base, {})
    return {f"{name}_over_{base}": {str(n): points[n] / ref[n]
                                    for n in sorted(points.keys() & ref.keys()) if ref[n]}
            for name, points in by.items() if name != base}


def multistream_results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    stat, bound = doc["requested"]["stat"], doc["requested"]["latency_bound_ms"]
    out = []
    layouts = dict.fromkeys(g["layout"] for g in doc.get("groups", []) if g.get("layout"))
    for layout in layouts:
        probes = [g for g in _complete(doc["groups"]) if g.get("layout") == layout]
        fits = [g for g in probes if (g.get("latency_ms") or {}).get(stat, 1e300) <= bound]
        best = max(fits, key=lambda g: g["batch"]) if fits else None
        row: dict[str, Any] = {
            "placement": probes[0]["placement"] if probes else None, "layout": layout,
            "instances": probes[0]["instances"] if probes else None,
            "batch": best["batch"] if best else None,
            "latency_ms": (best["latency_ms"][stat] if best else None),
            "throughput_ips": best["throughput_ips"] if best else None,
            "meets_bound": best is not None,
            "probes": [{"batch": g["batch"], "latency_ms": g["latency_ms"].get(stat),
                        "throughput_ips": g.get("throughput_ips")} for g in probes],
        }
        out.append(row)
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _ips(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def lines(summary: dict[str, Any]) -> list[str]:
    """A human-readable summary."""
    head = (f"{summary['scenario']}: {summary['engine']} {summary['precision']} "
            f"{summary['model']}  [{summary['status']}]"
            + ("  [simulated]" if summary.get("simulated") else ""))
    out = [head, f"  run: {summary['run']}"]
    for reason in summary.get("partial_reasons", []):
        out.append(f"  partial: {reason}")
    scenario = summary["scenario"]
    if scenario == "latency":
        lat = summary["latency_ms"]
        out.append("  latency ms: " + "  ".join(f"{k} {_ms(lat[k])}" for k in LAT_KEYS)
                   + f"  ({summary['samples']} samples)")
        out += [f"  note: {w}" for w in summary.get("warnings", [])]
    elif scenario == "throughput":
        out.append(f"  batch {summary['batch']}: {_ips(summary['throughput_ips'])} images/s "
                   f"({summary['queries']} batches)")
    elif scenario == "scaling":
        for s in summary["series"]:
            out.append(f"  {s['placement']} ({s['engine']} {s['precision']}):")
            for p in s["points"]:
                flag = "  oversubscribed" if p["oversubscribed"] else ""
                out.append(f"    N={p['instances']:<3} {_ips(p['throughput_ips']):>9} images/s"
                           f"  p50 {_ms(p['latency_ms']['p50'])} ms"
                           f"  p99 {_ms(p['latency_ms']['p99'])} ms{flag}")
                if p.get("per_host_ips"):
                    out.append("          per host: " + ", ".join(
                        f"{h} {_ips(v)}" for h, v in p["per_host_ips"].items()))
        out += _ratio_lines(summary, "  ")
    elif scenario == "multistream":
        out.append(f"  bound {summary['latency_bound_ms']:g} ms at {summary['stat']}")
        for r in summary["results"]:
            if r["meets_bound"]:
                out.append(f"  {r['layout']}: batch {r['batch']}  {_ms(r['latency_ms'])} ms  "
                           f"{_ips(r['throughput_ips'])} images/s")
            else:
                first = r["probes"][0] if r["probes"] else {}
                out.append(f"  {r['layout']}: no batch meets the bound (batch 1: "
                           f"{_ms(first.get('latency_ms'))} ms)")
    return out


def _ratio_lines(summary: dict[str, Any], indent: str) -> list[str]:
    """``pinned/shared: N=1 1.04x ...`` for each placement measured beside the baseline."""
    out = []
    for key, ratios in ratios_over_baseline(summary.get("series", [])).items():
        if ratios:
            top, base = key.split("_over_")
            out.append(f"{indent}{top}/{base}: " + "  ".join(f"N={n} {r:.2f}x"
                                                             for n, r in ratios.items()))
    return out


def headline(suite: dict[str, Any]) -> list[str]:
    """The figures a reader of a suite wants first, one line each."""
    out = [f"suite: {suite['run']}"]
    lat = suite.get("latency")
    if lat and lat.get("latency_ms", {}).get("p50") is not None:
        ms = lat["latency_ms"]
        out.append(f"  latency (batch 1): p50 {_ms(ms['p50'])} ms, p99 {_ms(ms['p99'])} ms")
    thr = suite.get("throughput")
    if thr and thr.get("throughput_ips") is not None:
        out.append(f"  throughput (batch {thr['batch']}): {_ips(thr['throughput_ips'])} images/s")
    sc = suite.get("scaling")
    if sc:
        for s in sc["series"]:
            pts = "  ".join(f"N={p['instances']} {_ips(p['throughput_ips'])}" for p in s["points"])
            out.append(f"  scaling {s['placement']} (images/s): {pts}")
        out += _ratio_lines(sc, "  ")
    ms_ = suite.get("multistream")
    if ms_:
        for r in ms_["results"]:
            what = (f"batch {r['batch']} at {_ms(r['latency_ms'])} ms, "
                    f"{_ips(r['throughput_ips'])} images/s" if r["meets_bound"]
                    else "no batch meets the bound")
            out.append(f"  multistream {r['layout']} (bound {ms_['latency_bound_ms']:g} ms "
                       f"{ms_['stat']}): {what}")
    return out
