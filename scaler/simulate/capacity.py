"""Capacity answers: which layout per server meets a latency bound with the most throughput,
how many servers reach a target throughput, and with how much headroom.

Every measured or simulated group of the given runs is a candidate layout of one server
(the run's machine): its instances, cores each, placement, precision, batch, throughput and
latency at the chosen statistic. The best layout is the one that meets the bound with the
most images/s per server (fewest servers); ties go to fewer instances.
"""

from __future__ import annotations

import math
from typing import Any

from scaler.errors import ScalerError, UsageError

STATS = ("p50", "p90", "p95", "p99", "p99.9", "mean")


class NoLayoutMeetsBound(ScalerError):
    """No candidate layout keeps the latency bound (an answer, exit code 1)."""


def _cores_each(run: Any, group: dict[str, Any]) -> list[int]:
    """Physical cores of each instance's CPUs (all usable cores for shared instances)."""
    topo = run.doc["host"]["topology"]
    core_of = {cpu: (c["package"], c["die"], c["core_id"])
               for c in topo.get("physical_cores", []) for cpu in c["cpus"]}
    out = []
    for inst in group.get("per_instance", []):
        cpus = (inst.get("partition") or {}).get("cpus")
        out.append(len({core_of.get(c, c) for c in cpus}) if cpus else int(topo["cores"]))
    return out


def candidates(runs: list[Any], stat: str, bound_ms: float) -> list[dict[str, Any]]:
    """One row per complete, non-emulated group of the runs."""
    rows = []
    for run in runs:
        topo = run.doc["host"]["topology"]
        for g in run.doc.get("groups", []):
            if g.get("status") != "complete" or not g.get("throughput_ips") or g.get("emulated"):
                continue
            latency = (g.get("latency_ms") or {}).get(stat)
            cores = _cores_each(run, g)
            rows.append({
                "run": str(run.path), "simulated": bool(g.get("simulated")),
                "machine": run.doc["host"].get("hostname"), "machine_cores": topo["cores"],
                "placement": g["placement"], "engine": g["engine"], "precision": g["precision"],
                "model": g.get("model", run.doc["effective"]["model"]),
                "instances": g["instances"], "batch": g["batch"],
                "cores_each": min(cores) if cores else None,
                "cores_each_max": max(cores) if cores else None,
                "oversubscribed": bool(g.get("oversubscribed")),
                "unpinned": not any((i.get("partition") or {}).get("cpus")
                                    for i in g.get("per_instance", [])),
                "throughput_ips": g["throughput_ips"], "latency_ms": latency,
                "meets_bound": latency is not None and latency <= bound_ms,
                "samples": (g.get("latency_ms") or {}).get("samples"),
            })
    return rows


def servers_for(target_ips: float, per_server_ips: float) -> tuple[int, float, float]:
    """Servers needed, spare images/s over the target, and that spare as a share of it."""
    servers = max(1, math.ceil(target_ips / per_server_ips - 1e-9))
    spare = servers * per_server_ips - target_ips
    return servers, spare, spare / target_ips


def plan_capacity(runs: list[Any], target_ips: float, bound_ms: float,
                  stat: str = "p99") -> dict[str, Any]:
    """The capacity answer: best layout overall and per series, with the candidates."""
    if target_ips <= 0:
        raise UsageError(f"--target-ips must be positive, not {target_ips:g}")
    if bound_ms <= 0:
        raise UsageError(f"--latency-bound-ms must be positive, not {bound_ms:g}")
    if stat not in STATS:
        raise UsageError(f"unknown --stat {stat!r}: choose from {', '.join(STATS)}")
    rows = candidates(runs, stat, bound_ms)
    if not rows:
        raise UsageError("no complete, non-emulated group in these runs")
    best_per: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if not row["meets_bound"]:
            continue
        key = (row["run"], row["placement"], row["engine"], row["precision"])
        if key not in best_per or _better(row, best_per[key]):
            best_per[key] = row
    answers = []
    for row in best_per.values():
        servers, spare, share = servers_for(target_ips, row["throughput_ips"])
        answers.append({**row, "servers": servers, "headroom_ips": spare, "headroom": share})
    answers.sort(key=lambda a: (a["servers"], -a["throughput_ips"], a["instances"]))
    return {"target_ips": target_ips, "latency_bound_ms": bound_ms, "stat": stat,
            "best": answers[0] if answers else None, "per_series": answers,
            "candidates": rows, "runs": [str(r.path) for r in runs]}


def _better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["throughput_ips"], -a["instances"]) > (b["throughput_ips"], -b["instances"])


def _layout(a: dict[str, Any]) -> str:
    cores = (f"{a['cores_each']}" if a["cores_each"] == a["cores_each_max"]
             else f"{a['cores_each']}-{a['cores_each_max']}")
    each = f"all {a['machine_cores']} cores shared" if a.get("unpinned") else \
        f"{cores} core(s) each"
    batch = f", batch {a['batch']}" if a["batch"] != 1 else ""
    return f"{a['instances']} x {a['placement']} ({each}), {a['engine']} {a['precision']}{batch}"


def lines(answer: dict[str, Any]) -> list[str]:
    stat, bound = answer["stat"], answer["latency_bound_ms"]
    out = [f"capacity for {answer['target_ips']:g} images/s with {stat} <= {bound:g} ms"]
    best = answer["best"]
    if best is None:
        out.append("  no layout in these runs meets the bound")
    else:
        sim = " (simulated)" if best["simulated"] else ""
        out += [f"  best layout per server{sim}: {_layout(best)} on {best['machine']}",
                f"    {best['throughput_ips']:.1f} images/s per server at {stat} "
                f"{best['latency_ms']:.1f} ms",
                f"    servers needed: {best['servers']}   headroom: "
                f"{best['headroom_ips']:.1f} images/s ({best['headroom']:.0%} over the target)"]
    out.append(f"  {'layout':<52} {'img/s':>8} {stat + ' ms':>9} {'servers':>7}")
    for a in answer["per_series"]:
        out.append(f"  {_layout(a):<52} {a['throughput_ips']:>8.1f} {a['latency_ms']:>9.1f} "
                   f"{a['servers']:>7}")
    missed = [r for r in answer["candidates"] if not r["meets_bound"]]
    if missed:
        out.append(f"  {len(missed)} of {len(answer['candidates'])} candidate layouts miss the "
                   "bound")
    return out
