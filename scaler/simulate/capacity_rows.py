"""The candidates of a capacity answer (``scaler.simulate.capacity``): which runs and groups
can support it (why the others are left out), the machine each run measured or simulated, and
one row per layout with the cohort it belongs to and the latency a decision uses: a
closed-loop point's, or the highest offered rate of a server run that kept the bound.
"""

from __future__ import annotations

from typing import Any

from scaler import points as points_mod
from scaler.simulate import capacity_styles as styles

PERCENT = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
# a run whose rules are at or below these is a smoke run (``--quick``: 2 s, 10 queries)
SMOKE_MAX_DURATION_S = 2.0
SMOKE_MAX_QUERIES = 10

CLOSED, SERVER_PEAK, SERVER_RATE = "closed loop", "server peak", "server rate"
KIND_HELP = {
    SERVER_PEAK: "server peak: the highest Poisson arrival rate tried (scaler server "
                 "--find-peak) whose conservative latency from arrival kept the bound",
    SERVER_RATE: "server rate: one offered Poisson rate (scaler server, no --find-peak) "
                 "that kept the bound; the layout's peak may be higher",
    CLOSED: "closed loop: each instance waits for its own query (no queueing), so the "
            "latency is optimistic for a service level; measure the layout with "
            "`scaler server --find-peak` for an honest figure",
}


# -- machines and runs ----------------------------------------------------------------------


def machine_of(run: Any) -> dict[str, Any]:
    """The machine a run measured (or simulated): a short label, a key, the core count."""
    doc = run.doc
    host = doc.get("host", {})
    topo = host.get("topology", {})
    packages = int(topo.get("packages") or 1)
    cores = int(topo.get("cores") or 0)
    compact = f"{packages}s{cores // max(packages, 1)}c{int(topo.get('threads_per_core') or 1)}t"
    nodes = topo.get("nodes") or 1
    nodes = len(nodes) if isinstance(nodes, list) else int(nodes)
    if nodes > packages:
        compact += f"{nodes // packages}n"
    simulated = bool(doc.get("simulated"))
    if simulated:
        label = f"{compact} (simulated)"
        key = ("simulated", compact)
    else:
        name = host.get("hostname") or "?"
        label = f"{name} {compact}"
        key = ("measured", name, host.get("cpu_model"), compact)
    return {"label": label, "key": key, "cores": cores, "cpu_model": host.get("cpu_model"),
            "hostname": host.get("hostname"), "simulated": simulated}


def run_exclusion(run: Any) -> str | None:
    """Why a whole run cannot support a capacity answer, or None."""
    doc = run.doc
    eff = doc.get("effective", {})
    from scaler.runsets import infers

    if not infers(str(eff.get("engine"))):
        return (f"{eff.get('engine')} engine: it does no inference (it measures the harness "
                "itself)")
    if doc.get("emulated"):
        return ("emulated: VMs without hardware virtualization (TCG, about 100x slow) are "
                "not timing results")
    if run.scenario not in ("latency", "throughput", "scaling", "multistream", "server"):
        return f"a {run.scenario} run holds no layout to plan with"
    if not doc.get("simulated"):
        req = doc.get("requested", {})
        if req.get("quick") or req.get("smoke"):
            return "smoke run (--quick)"
        duration, queries = req.get("min_duration_s"), req.get("min_queries")
        if (duration is not None and queries is not None and duration <= SMOKE_MAX_DURATION_S
                and queries <= SMOKE_MAX_QUERIES):
            return (f"smoke run: its rules ({duration:g} s, {queries} queries) are --quick's "
                    "or shorter")
    return None


# -- candidates -------------------------------------------------------------------------------


def _cores_each(run: Any, group: dict[str, Any]) -> list[int]:
    """Physical cores of each instance's CPUs (all usable cores for unpinned instances)."""
    topo = run.doc["host"]["topology"]
    core_of = {cpu: (c["package"], c["die"], c["core_id"])
               for c in topo.get("physical_cores", []) or [] if isinstance(c, dict)
               for cpu in c["cpus"]}
    out = []
    for inst in group.get("per_instance", []):
        cpus = (inst.get("partition") or {}).get("cpus")
        out.append(len({core_of.get(c, c) for c in cpus}) if cpus else int(topo["cores"]))
    return out


def decision(latency: dict[str, Any], stat: str, simulated: bool
             ) -> tuple[float | None, str, str | None]:
    """The latency a decision uses at ``stat``, how it was estimated, and why it is missing.

    Measured percentiles with an early-stopping estimate use it (None when too few queries);
    other percentiles (p95, p99.9) and simulated runs (no raw samples kept) use the plain
    percentile, and only over at least the queries early stopping would need."""
    samples = int(latency.get("samples") or 0)
    if stat == "mean":
        value = latency.get("mean")
        return value, "mean", None if value is not None else "no queries"
    p = PERCENT[stat]
    from scaler.stats import early_stopping_min_queries

    need = early_stopping_min_queries(p)
    if not simulated and stat in (latency.get("early_stopping") or {}):
        value = points_mod.decision_latency(latency, stat)
        if value is None:
            return None, "conservative", (f"{stat} from {samples} queries: the conservative "
                                          f"estimate needs {need}")
        return value, "conservative", None
    how = "simulated" if simulated else "plain"
    if samples < need:
        return None, how, f"{stat} from {samples} queries: fewer than the {need} it needs"
    return latency.get(stat), how, None


def _layout_fields(run: Any, point: dict[str, Any], groups: dict[Any, dict[str, Any]]
                   ) -> dict[str, Any]:
    group = next((groups[i] for i in point.get("groups", []) if i in groups), {})
    cores = _cores_each(run, group) if group else []
    pinned = any((i.get("partition") or {}).get("cpus") for i in group.get("per_instance", []))
    topo_cores = int(run.doc["host"]["topology"].get("cores") or 0)
    return {"placement": point.get("placement"), "threading": styles.style_of(point),
            "instances": point.get("instances"),
            "batch": point.get("batch") or 1,
            "cores_each": min(cores) if cores else None,
            "cores_each_max": max(cores) if cores else None,
            "unpinned": not pinned, "machine_cores": topo_cores,
            "oversubscribed": bool(point.get("oversubscribed") or group.get("oversubscribed")),
            "oversubscription": group.get("oversubscription"),
            "noisy": bool(point.get("noisy")), "others_cpu_share": point.get("others_cpu_share"),
            "repeats": point.get("repeats"), "complete": point.get("complete")}


def _cohort_of(run: Any, point: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    eff = run.doc.get("effective", {})
    return {"model": point.get("model") or eff.get("model"),
            "engine": point.get("engine") or eff.get("engine"),
            "precision": point.get("precision") or eff.get("precision"),
            "isa_cap": point.get("isa_cap", "native"),  # another cap: another machine
            "machine": machine["label"], "simulated": machine["simulated"],
            "cpu_model": machine["cpu_model"], "machine_key": machine["key"]}


def run_candidates(run: Any, stat: str, bound_ms: float
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The candidate rows of one usable run, and the groups of it left out (with why)."""
    from scaler.summaries import doc_points

    machine = machine_of(run)
    groups = {g.get("id"): g for g in run.doc.get("groups", [])}
    rows, left = [], []
    simulated = machine["simulated"]
    server = run.scenario == "server"
    by_layout: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for p in doc_points(run.doc):
        if not p.get("complete") or p.get("throughput_ips") is None:
            continue
        if p.get("emulated"):
            left.append({"run": str(run.path), "what": _where(p),
                         "reason": "emulated (VM under TCG): not a timing result"})
            continue
        if server and p.get("target_qps") is None:
            continue  # the closed-loop calibration of the peak search
        if server:
            by_layout.setdefault((p.get("placement"), p.get("instances"), p.get("batch"),
                                  p.get("model"), p.get("engine"), p.get("precision")),
                                 []).append(p)
            continue
        latency = p.get("latency_ms") or {}
        value, how, why = decision(latency, stat, simulated)
        low = (p.get("ci95_ips") or [None])[0]
        rows.append({
            "run": str(run.path), **_cohort_of(run, p, machine),
            **_layout_fields(run, p, groups),
            "kind": CLOSED, "throughput_ips": p["throughput_ips"], "ci95_ips": p.get("ci95_ips"),
            "planning_ips": low if low is not None else p["throughput_ips"],
            "latency_ms": value, "latency_estimate": how, "undecided": why,
            "samples": int(latency.get("samples") or 0),
            "meets_bound": value is not None and value <= bound_ms})
    for probes in by_layout.values():
        rows.append(_server_row(run, probes, stat, bound_ms, machine, groups))
    return rows, left


def _server_row(run: Any, probes: list[dict[str, Any]], stat: str, bound_ms: float,
                machine: dict[str, Any], groups: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """One layout of a server run: the highest offered rate that kept the bound at ``stat``
    (judged again here: the capacity bound need not be the run's)."""
    req = run.doc.get("requested", {})
    peak_search = any(p.get("probe") for p in probes)
    passing, undecided = [], []
    for p in probes:
        lat = p.get("latency_ms") or {}
        value, how, why = decision(lat, stat, False)
        ok = bool(p.get("valid") and not p.get("bound_failed") and value is not None
                  and value <= bound_ms)
        if ok:
            passing.append((p, value, how))
        elif why and not p.get("bound_failed") and p.get("valid"):
            undecided.append(why)
    head = {"run": str(run.path), **_cohort_of(run, probes[0], machine),
            **_layout_fields(run, probes[0], groups),
            "kind": SERVER_PEAK if peak_search else SERVER_RATE,
            "run_bound_ms": req.get("latency_bound_ms"), "run_stat": req.get("stat"),
            "rates_tried": sorted(p["target_qps"] for p in probes), "ci95_ips": None}
    if not passing:
        best = max(probes, key=lambda p: p["target_qps"])
        lat = best.get("latency_ms") or {}
        value, how, _ = decision(lat, stat, False)
        return {**head, "throughput_ips": None, "planning_ips": None, "latency_ms": value,
                "latency_estimate": how, "samples": int(lat.get("samples") or 0),
                "undecided": undecided[0] if undecided else None, "meets_bound": False,
                "no_rate_meets": True}
    p, value, how = max(passing, key=lambda x: x[0]["target_qps"])
    head.update(_layout_fields(run, p, groups))
    return {**head, "throughput_ips": p["target_qps"], "achieved_ips": p.get("achieved_qps"),
            "planning_ips": p["target_qps"], "latency_ms": value, "latency_estimate": how,
            "samples": int((p.get("latency_ms") or {}).get("samples") or 0),
            "undecided": None, "meets_bound": True, "noisy": bool(p.get("noisy")),
            "others_cpu_share": p.get("others_cpu_share")}


def _where(p: dict[str, Any]) -> str:
    return f"{p.get('instances')} x {p.get('placement')}"
