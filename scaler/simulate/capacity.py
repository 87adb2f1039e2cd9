"""Capacity answers: which layout per server keeps a latency bound with the most throughput,
how many servers carry a target throughput with the headroom asked, and how sure that is.

Only data that can support the answer is used:

- A run of the null engine (no inference), an emulated run (VMs under TCG, ~100x slow) and
  a smoke run (``--quick`` rules or shorter) is left out, saying why; so is an emulated or
  calibration group inside a run.
- Candidates are grouped into *cohorts* by what they measured: model, engine, precision,
  machine, and measured or simulated. Each cohort gets its own answer; layouts of different
  cohorts are never ranked against each other.
- The latency a decision uses is the conservative one: LoadGen's early-stopping estimate at
  99% confidence (``scaler.points.decision_latency``). A layout whose queries are too few for
  it cannot be decided and is listed as such, never recommended; the answer says so when
  such a layout might have beaten the recommendation.
- Server-scenario figures (open loop: Poisson arrivals, latency from each request's
  arrival, queueing included) are the honest input for a service level. Where a cohort has
  them the recommendation comes from them; closed-loop figures (each instance waits for its
  own query: no queueing) are then listed for reference only, and otherwise are used with a
  note that they are optimistic.
- The throughput a plan divides by is the lower end of the 95% interval across repeats
  where there is one (one repeat has none, and the answer says so).
- An oversubscribed layout (more instances or threads than CPUs, time-sliced) is listed but
  not recommended unless asked (``allow_oversubscribed``); a recommendation states whether
  it is oversubscribed.
- The headroom asked (share of the fleet's capacity kept free, 20% by default) is part of
  the answer: servers = ceil(target / (per-server figure x (1 - headroom))).
"""

from __future__ import annotations

import math
from typing import Any

from scaler import points as points_mod
from scaler.errors import ScalerError, UsageError
from scaler.simulate import capacity_styles as styles

STATS = ("p50", "p90", "p95", "p99", "p99.9", "mean")
PERCENT = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
DEFAULT_HEADROOM = 0.20
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


class NoLayoutMeetsBound(ScalerError):
    """No cohort has a layout to recommend (an answer, exit code 1)."""


def parse_headroom(text: str) -> float:
    """``20%`` or ``0.2`` -> 0.2; a share in [0, 1). One-line UsageError otherwise."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--headroom {text!r}: give a share such as 20% or 0.2") from None
    if not raw.endswith("%") and value > 1.0:
        raise UsageError(f"--headroom {text}: give a share such as 20% or 0.2 (did you mean "
                         f"{raw}%?)")
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise UsageError(f"--headroom {text}: must lie in [0%, 100%)")
    return value


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


# -- the answer -------------------------------------------------------------------------------


def servers_for(target_ips: float, per_server_ips: float, headroom: float = 0.0
                ) -> tuple[int, float, float]:
    """Servers needed so that the target uses at most ``1 - headroom`` of their capacity,
    the utilisation that gives, and the headroom left (the share of capacity kept free)."""
    usable = per_server_ips * (1.0 - headroom)
    servers = max(1, math.ceil(target_ips / usable - 1e-9))
    utilisation = target_ips / (servers * per_server_ips)
    return servers, utilisation, 1.0 - utilisation


def _rank_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (-row["planning_ips"], row["instances"] or 0, row["batch"])


def _cohort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["model"], row["engine"], row["precision"], row.get("isa_cap", "native"),
            row["machine_key"], row["simulated"])


def plan_capacity(runs: list[Any], target_ips: float, bound_ms: float, stat: str = "p99",
                  headroom: float = DEFAULT_HEADROOM, allow_oversubscribed: bool = False,
                  allow_styles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The capacity answer: per cohort a recommendation (or why there is none) and every
    candidate with its verdict; the runs and groups left out with the reason. Unpinned
    layouts under ``defaults`` or ``model-zoo`` are planned on only when in ``allow_styles``
    (``capacity_styles``)."""
    if target_ips <= 0:
        raise UsageError(f"--target-ips must be positive, not {target_ips:g}")
    if bound_ms <= 0:
        raise UsageError(f"--latency-bound-ms must be positive, not {bound_ms:g}")
    if stat not in STATS:
        raise UsageError(f"unknown --stat {stat!r}: choose from {', '.join(STATS)}")
    if not 0.0 <= headroom < 1.0:
        raise UsageError(f"--headroom must lie in [0%, 100%), not {headroom:.0%}")
    styles.check_allowed(allow_styles)
    rows: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for run in runs:
        why = run_exclusion(run)
        if why:
            eff = run.doc.get("effective", {})
            left.append({"run": str(run.path), "what": f"{run.scenario}, {eff.get('engine')} "
                         f"{eff.get('precision')} {eff.get('model')}", "reason": why})
            continue
        got, dropped = run_candidates(run, stat, bound_ms)
        rows += got
        left += dropped
    if not rows:
        reasons = "; ".join(f"{x['run']}: {x['reason']}" for x in left) or "no complete group"
        raise UsageError(f"no run here can support a capacity answer ({reasons})")
    cohorts: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        cohorts.setdefault(_cohort_key(row), []).append(row)
    answers = [_cohort_answer(rs, target_ips, headroom, allow_oversubscribed, bound_ms, stat,
                              allow_styles) for rs in cohorts.values()]
    answers.sort(key=lambda c: (c["recommendation"] is None, c["simulated"], c["model"],
                                c["engine"], c["precision"], c["machine"]))
    recommended = [c for c in answers if c["recommendation"]]
    return {"target_ips": target_ips, "latency_bound_ms": bound_ms, "stat": stat,
            "headroom": headroom, "allow_oversubscribed": allow_oversubscribed,
            "allow_styles": list(allow_styles),
            "cohorts": answers, "left_out": left,
            "partial_runs": [{"run": str(r.path), "reasons": r.doc.get("partial_reasons") or []}
                             for r in runs if r.doc.get("status") not in ("complete", None)],
            "best": recommended[0]["recommendation"] if len(answers) == 1 and recommended
            else None,
            "runs": [str(r.path) for r in runs]}


def _cohort_answer(rows: list[dict[str, Any]], target_ips: float, headroom: float,
                   allow_oversubscribed: bool, bound_ms: float, stat: str,
                   allow_styles: tuple[str, ...] = ()) -> dict[str, Any]:
    first = rows[0]
    servers_exist = any(r["kind"] != CLOSED for r in rows)
    for r in rows:
        r["verdict"] = (styles.HELD_BACK if styles.held_back(r, allow_styles)
                        else _verdict(r, servers_exist, allow_oversubscribed))
        if r["planning_ips"] is not None:
            r["servers"], r["utilisation"], r["headroom"] = servers_for(
                target_ips, r["planning_ips"], headroom)
        else:
            r["servers"] = r["utilisation"] = r["headroom"] = None
    eligible = sorted((r for r in rows if r["verdict"] == "meets"), key=_rank_key)
    best = eligible[0] if eligible else None
    notes: list[str] = []
    if best is not None:
        best["verdict"] = "recommended"
        over = [r for r in rows if r["verdict"] == "oversubscribed" and r["meets_bound"]
                and r["planning_ips"] > best["planning_ips"]]
        if over:
            o = max(over, key=lambda r: r["planning_ips"])
            notes.append(f"{layout_text(o)} serves more ({o['planning_ips']:.1f} images/s) but "
                         "is oversubscribed (time-sliced: its tail latency depends on the "
                         "scheduler's quanta); --allow-oversubscribed lets it be recommended")
        unsure = [r for r in rows if r["verdict"] == "cannot decide"
                  and (r["throughput_ips"] or 0) > best["planning_ips"]]
        if unsure:
            notes.append(f"cannot tell whether {len(unsure)} layout(s) with more throughput "
                         f"keep the bound: {unsure[0]['undecided']} "
                         f"({layout_text(unsure[0])}); measure longer to decide")
        if best["kind"] == CLOSED:
            notes.append(KIND_HELP[CLOSED])
        if best["ci95_ips"] is None and best["kind"] == CLOSED:
            notes.append("one repeat: no interval on the throughput (--repeat 3 or more gives "
                         "one; the plan then divides by its lower end)")
        if best["noisy"]:
            notes.append(f"measured while other processes used "
                         f"{best['others_cpu_share'] or 0:.0%} of its CPUs (noisy)")
        if best["kind"] != CLOSED and best.get("run_bound_ms") is not None:
            notes.append(_server_bound_note(best, bound_ms, stat))
        status = "recommended"
    elif any(r["verdict"] == "cannot decide" for r in rows):
        u = next(r for r in rows if r["verdict"] == "cannot decide")
        status = "cannot decide"
        notes.append(f"cannot decide: no layout is shown to keep the bound, and "
                     f"{sum(r['verdict'] == 'cannot decide' for r in rows)} have too few "
                     f"queries to tell ({layout_text(u)}: {u['undecided']})")
    elif any(r["verdict"] == "oversubscribed" and r["meets_bound"] for r in rows):
        status = "only oversubscribed layouts keep the bound"
        notes.append("only oversubscribed layouts keep the bound: --allow-oversubscribed "
                     "lets one be recommended")
    else:
        status = "no layout keeps the bound"
    notes += filter(None, [styles.held_back_note(rows), styles.pinned_note(rows, best,
                                                                          layout_text)])
    return {"model": first["model"], "engine": first["engine"],
            "precision": first["precision"], "isa_cap": first.get("isa_cap", "native"),
            "machine": first["machine"],
            "cpu_model": first["cpu_model"], "simulated": first["simulated"],
            "figures": sorted({r["kind"] for r in rows}), "status": status,
            "recommendation": best, "notes": notes,
            "runs": sorted({r["run"] for r in rows}),
            "candidates": sorted(rows, key=lambda r: (_VERDICT_ORDER.get(r["verdict"], 9),
                                                      -(r["planning_ips"] or 0)))}


_VERDICT_ORDER = {"recommended": 0, "meets": 1, "oversubscribed": 2, "cannot decide": 3,
                  "misses the bound": 4, "reference only": 5, styles.HELD_BACK: 6}


def _verdict(r: dict[str, Any], servers_exist: bool, allow_oversubscribed: bool) -> str:
    if r["kind"] == CLOSED and servers_exist:
        return "reference only"
    if r["undecided"] and not r["meets_bound"]:
        return "cannot decide"
    if not r["meets_bound"]:
        return "misses the bound"
    if r["oversubscribed"] and not allow_oversubscribed:
        return "oversubscribed"
    return "meets"


def _server_bound_note(r: dict[str, Any], bound_ms: float, stat: str) -> str:
    """How a server figure relates to the bound its run searched for."""
    run_bound, run_stat = r["run_bound_ms"], r["run_stat"]
    text = (f"{r['kind']}: {r['throughput_ips']:g} requests/s is the highest of "
            f"{len(r['rates_tried'])} offered rate(s) that kept {stat} <= {bound_ms:g} ms")
    if r["kind"] != SERVER_PEAK:
        return text + "; the layout's peak may be higher (search it with --find-peak)"
    if (run_stat, run_bound) == (stat, bound_ms):
        return text + " (the run searched for this bound)"
    text += f"; the run searched for {run_stat} <= {run_bound:g} ms"
    if run_stat == stat and run_bound < bound_ms:
        text += (", stopping rates over that early: for this looser bound the peak is at "
                 "least this")
    return text


# -- lines ------------------------------------------------------------------------------------


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
