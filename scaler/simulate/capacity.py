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

This module ranks the candidates and answers; ``capacity_rows`` makes the candidates from the
runs (what is left out, the machine, the latency a decision uses), ``capacity_text`` writes
the answer as lines, ``capacity_styles`` holds the rules of thread styles.
"""

from __future__ import annotations

import math
from typing import Any

from scaler.errors import ScalerError, UsageError
from scaler.simulate import capacity_styles as styles
from scaler.simulate.capacity_rows import (
    CLOSED,
    KIND_HELP,
    PERCENT,
    SERVER_PEAK,
    SERVER_RATE,
    SMOKE_MAX_DURATION_S,
    SMOKE_MAX_QUERIES,
    decision,
    machine_of,
    run_candidates,
    run_exclusion,
)
from scaler.simulate.capacity_text import layout_text, lines

__all__ = ["CLOSED", "DEFAULT_HEADROOM", "KIND_HELP", "PERCENT", "SERVER_PEAK", "SERVER_RATE",
           "SMOKE_MAX_DURATION_S", "SMOKE_MAX_QUERIES", "STATS", "NoLayoutMeetsBound",
           "decision", "layout_text", "lines", "machine_of", "parse_headroom", "plan_capacity",
           "run_candidates", "run_exclusion", "servers_for"]

STATS = ("p50", "p90", "p95", "p99", "p99.9", "mean")
DEFAULT_HEADROOM = 0.20


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
