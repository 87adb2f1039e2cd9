"""Points: a measured figure across its repeats.

A run measures each point (a placement, engine, precision, model, instance count and batch;
for multistream also its layout) once per repeat, each repeat a group of its own with fresh
worker processes. A point's figure is the median throughput of its complete repeats with a
95% interval (``scaler.significance``), its latency percentiles pooled over every repeat's
queries (with the per-repeat p50/p99 spread), and its conditions: ``noisy`` when any repeat
was taken while others used more than the noise limit of its CPUs, ``unstable`` when the
repeats vary by more than 5% (coefficient of variation).
"""

from __future__ import annotations

from typing import Any

from scaler import significance, stats
from scaler.schema import Group, Point

KEY_FIELDS = ("series", "placement", "threading", "isa_cap", "engine", "precision", "model",
              "instances", "batch", "layout", "target_qps")


def point_key(group: dict[str, Any] | Group) -> tuple[Any, ...]:
    return tuple(group.get(k) for k in KEY_FIELDS)


def typed_groups(groups: list[dict[str, Any]] | list[Group]) -> list[Group]:
    """Groups as typed records (``scaler.schema.Group``), each checked: a bad field is a
    ``FieldError`` naming it (``groups[k]``: its place in the list given). Which fields a
    group must hold is the load's and the writers' rule, not this one's."""
    return [g if isinstance(g, Group) else Group.from_dict(g, f"groups[{k}]", required=())
            for k, g in enumerate(groups)]


def aggregate(groups: list[dict[str, Any]] | list[Group], arrays: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
    """One point per distinct key, in the order first measured. With the run's raw sample
    ``arrays`` the latency is pooled over every complete repeat; without them (an old run
    file) a point of one repeat keeps its group's latency summary."""
    by: dict[tuple[Any, ...], list[Group]] = {}
    for g in typed_groups(groups):
        by.setdefault(point_key(g), []).append(g)
    return [point_of(gs, arrays) for gs in by.values()]


def point_of(groups: list[dict[str, Any]] | list[Group], arrays: dict[str, Any] | None
             ) -> dict[str, Any]:
    """The point of the repeats ``groups`` (all of one key); attempts superseded by a
    re-measure (contended windows) are left out, the point says how many."""
    every = typed_groups(groups)
    kept = [g for g in every if not g.superseded] or every
    superseded = len(every) - len(kept)
    first = kept[0]
    done = [g for g in kept if g.complete and g.throughput_ips is not None]
    across = significance.across_repeats([g.throughput_ips for g in done])
    noise = [g.others_cpu_share for g in kept if g.others_cpu_share is not None]
    point: dict[str, Any] = {k: first.get(k) for k in KEY_FIELDS if first.get(k) is not None}
    point.update({
        "groups": [g.id for g in kept], "repeats": len(kept), "complete": len(done),
        "throughput_ips": across["median"], "ci95_ips": across["ci95"],
        "repeats_ips": across["repeats"], "min_ips": across["min"], "max_ips": across["max"],
        "cv": across["cv"], "unstable": across["unstable"],
        "noisy": any(g.noisy for g in kept),
        "contended": any(g.contended for g in kept),
        "remeasured": superseded,
        "others_cpu_share": max(noise) if noise else None,
        "oversubscribed": first.plan.oversubscribed,
        "latency_ms": (pooled := _pooled_latency(done, arrays)),
        "latency_repeats": [{k: (g.latency_ms or {}).get(k) for k in ("mean", "p50", "p99")}
                            for g in done],
        # too few queries for a percentile: judged on the queries the point pools
        "warnings": _warnings(done, pooled),
    })
    if done:
        middle = min(done, key=lambda g: abs(g.throughput_ips - across["median"]))
        point["per_instance_ips"] = [i.throughput_ips for i in middle.per_instance or ()]
        if middle.per_host:
            point["per_host_ips"] = {h: v.get("throughput_ips")
                                     for h, v in middle.per_host.items()}
    for key in ("simulated", "emulated", "probe"):
        if first.get(key):
            point[key] = True
    if first.target_qps is not None:  # a served group (the server scenario)
        lags = [(g.generator or {}).get("lag_ms", {}).get("p99") for g in kept]
        point.update(
            target_qps=first.target_qps, achieved_qps=across["median"],
            valid=bool(kept) and all(g.valid for g in kept),
            bound_failed=any(g.bound_failed for g in kept),
            invalid_reasons=sorted({r for g in kept for r in g.invalid_reasons or []}),
            generator_lag_p99_ms=max((x for x in lags if x is not None), default=None))
    # its figures checked as a reader checks them (what it holds: its groups')
    return Point.from_dict(point, f"the point of groups {point['groups']}", required=()
                           ).to_dict()


def _warnings(done: list[Group], pooled: dict[str, Any]) -> list[str]:
    """The complete repeats' warnings, once each; those about too few queries for a
    percentile judged again on the queries the point pools (when it counts them)."""
    found = {w for g in done for w in g.warnings or []}
    if done and "samples" in pooled:
        found = {w for w in found if not stats.is_sample_warning(w)}
        found |= set(stats.sample_warnings(pooled["samples"]))
    return sorted(found)


def _pooled_latency(done: list[Group], arrays: dict[str, Any] | None) -> dict[str, Any]:
    if not done:
        return {"samples": 0}
    if arrays is None or len(done) == 1:
        return dict(done[0].latency_ms or {"samples": 0})
    import numpy as np

    parts = []
    for g in done:
        for inst in g.per_instance or ():
            s = arrays.get(f"g{g.id}_i{inst.index}_start_ns")
            e = arrays.get(f"g{g.id}_i{inst.index}_end_ns")
            if s is not None and e is not None:
                parts.append((np.asarray(e, np.int64) - np.asarray(s, np.int64)) / 1e6)
    if not parts:  # no raw samples (simulated): the median repeat's summary
        return dict(done[len(done) // 2].latency_ms or {"samples": 0})
    return stats.latency_summary(np.concatenate(parts))


def decision_latency(latency: dict[str, Any], stat: str) -> float | None:
    """The latency a decision uses at ``stat``: the early-stopping (conservative) estimate
    for percentiles that have one, else the plain figure; None when too few queries."""
    conservative = (latency.get("early_stopping") or {})
    if stat in conservative:
        return conservative[stat]
    return latency.get(stat)
