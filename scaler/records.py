"""Group records: what one measured group becomes in ``run.json``, and its raw samples.

``group_record`` turns a coordinator outcome into the record (per instance: partition,
binding, threads, engine info, samples summary; per group: throughput over the common
window, pooled latency percentiles, warnings) and fills the run's sample arrays. Every
record is built through the typed run record (``scaler.schema``): a field missing or of the
wrong type fails here, where it is written, not in a reader.
"""

from __future__ import annotations

from typing import Any

from scaler import stats
from scaler.outcomes import GroupOutcome, InstanceOutcome, RunRules
from scaler.placements import GroupPlan
from scaler.schema import Group, Instance
from scaler.stoprule import window_record
from scaler.targets import Target

READY_KEYS = ("pid", "binding", "memory_nodes", "threads", "engine", "hostname", "load_s", "isa",
              "threading", "thread_readback", "spin", "amx_permission", "rss_peak_bytes")


def instance_entry(inst: InstanceOutcome, target: Target) -> dict[str, Any]:
    """One instance as recorded: partition, status, error, what its worker reported."""
    entry: dict[str, Any] = {"index": inst.index, "status": inst.status,
                             "partition": inst.partition}
    if inst.error:
        entry["error"] = inst.error
        entry["stderr_tail"] = inst.stderr_tail[-15:]
    entry.update(target.instance_info(inst.index))
    if inst.ready:
        entry.update({k: inst.ready.get(k) for k in READY_KEYS},
                     reused=bool(inst.ready.get("reused")))
    return Instance.written(entry, f"instance {inst.index}")


def group_record(gid: int, plan: GroupPlan, batch: int, outcome: GroupOutcome, target: Target,
                 settings: dict[str, Any], rules: RunRules, arrays: dict[str, Any]
                 ) -> dict[str, Any]:
    """The record of group ``gid``; its instances' raw samples are added to ``arrays``.

    ``settings`` holds the engine, precision and model the group ran."""
    import numpy as np

    starts, ends, clocks, boot_ids, per_instance = [], [], [], set(), []
    for inst in outcome.instances:
        entry = instance_entry(inst, target)
        if inst.ready:
            boot_ids.add(inst.ready.get("boot_id"))
        if inst.start_ns is not None:
            s = np.frombuffer(inst.start_ns, dtype=np.int64)
            e = np.frombuffer(inst.end_ns, dtype=np.int64)
            arrays[f"g{gid}_i{inst.index}_start_ns"] = s
            arrays[f"g{gid}_i{inst.index}_end_ns"] = e
            starts.append(s)
            ends.append(e)
            clocks.append(((entry.get("host") or {}).get("name", ""),
                           str((inst.ready or {}).get("boot_id") or "")))
            span_s = (e[-1] - s[0]) / 1e9 if len(s) else 0.0
            entry.update(queries=int(len(s)), latency_ms=stats.latency_ms(s, e),
                         throughput_ips=len(s) * batch / span_s if span_s else 0.0)
            if inst.samples_until_failure:  # what it finished before it failed, kept
                entry["samples_until_failure"] = True
        per_instance.append(entry)
    record: dict[str, Any] = {
        "id": gid, "placement": plan.placement, "target": target.name,
        "emulated": target.emulated, **settings, "batch": batch,
        "instances": len(plan.instances), **plan.layout,
        "status": "complete" if outcome.complete else "partial", "errors": outcome.errors,
        "wall_s": round(outcome.wall_s, 3), "per_instance": per_instance,
        "noise": outcome.noise or None, "noisy": bool((outcome.noise or {}).get("noisy")),
        "speed_probe": getattr(outcome, "speed_probe", None) or None,
        "others_cpu_share": (outcome.noise or {}).get("others_cpu_share"),
        "stall_timeout_s": outcome.stall_s,
    }
    if rules.latency_bound_ms is not None:
        record["bound_failed"] = outcome.bound_failed
    if outcome.window:  # requested and recorded queries and duration of the window
        record["window"] = window_record(outcome.window, starts, ends)
    if starts and outcome.complete:
        record.update(_group_figures(plan, starts, ends, clocks, boot_ids, batch))
        record["warnings"] += rule_warnings(outcome, rules) + overlap_warnings(record)
        record["rules_met"] = not rule_warnings(outcome, rules)
    return Group.written(record, f"group {gid}")  # a field missing or mistyped: here


def rule_warnings(outcome: GroupOutcome, rules: RunRules) -> list[str]:
    """The run rules a complete group did not meet, said loudly."""
    out: list[str] = []
    if outcome.bound_failed:
        return out  # ended on purpose: the latency bound could no longer be met
    if outcome.under_min_queries:
        out.append(f"run rule not met: stopped at the {rules.max_duration_s:g} s limit before "
                   f"{rules.min_queries} queries")
    if outcome.capped_early:
        which = ", ".join(str(k) for k in outcome.capped_early)
        out.append(f"run rule not met: instance(s) {which} reached --max-queries before the "
                   f"{rules.min_duration_s:g} s minimum duration (raise the worker's max_queries "
                   "or shorten --min-duration)")
    return out


def overlap_warnings(record: dict[str, Any]) -> list[str]:
    """Each instance kept the minimum duration, but a worker woken late (a busy machine)
    left the instances less time together than that: said, not hidden."""
    w = record.get("window") or {}
    together, asked = w.get("recorded_duration_s"), w.get("requested_duration_s") or 0.0
    if together is None or together >= asked or not w.get("late_start_ms"):
        return []
    return [f"the instances ran together for {max(together, 0):.3g} s, under the "
            f"{asked:g} s minimum: one began {w['late_start_ms']:.3g} ms after the common start"]


def _group_figures(plan: GroupPlan, starts: list[Any], ends: list[Any],
                   clocks: list[tuple[str, str]], boot_ids: set[Any], batch: int
                   ) -> dict[str, Any]:
    """Throughput (common window, or summed per host for a fleet) and pooled latency."""
    import numpy as np

    # one clock only if every worker saw the same (known) boot: VMs and hosts differ
    shared = len(boot_ids) == 1 and bool(next(iter(boot_ids)))
    ips, how = stats.throughput_ips(starts, ends, batch, shared_clock=shared)
    out: dict[str, Any] = {}
    if any(i.host for i in plan.instances):
        per_host = per_host_throughput(clocks, starts, ends, batch)
        out["per_host"] = per_host
        ips = sum(h["throughput_ips"] for h in per_host.values())
        how = {"method": "sum_over_hosts", "hosts": len(per_host)}
    all_s, all_e = np.concatenate(starts), np.concatenate(ends)
    warnings = stats.sample_warnings(int(all_s.size))
    if how.get("fallback"):
        warnings.append(f"throughput summed over instances: {how['fallback']}")
    out.update(throughput_ips=ips, throughput=how, queries=int(all_s.size),
               latency_ms=stats.latency_ms(all_s, all_e), warnings=warnings)
    return out


def per_host_throughput(clocks: list[tuple[str, str]], starts: list[Any], ends: list[Any],
                        batch: int) -> dict[str, dict[str, Any]]:
    """Images/s of each host's instances; their common window when they share one boot."""
    out: dict[str, dict[str, Any]] = {}
    for host in dict.fromkeys(h for h, _ in clocks):
        picked = [k for k, (h, _) in enumerate(clocks) if h == host]
        boots = {clocks[k][1] for k in picked}
        ips, how = stats.throughput_ips([starts[k] for k in picked], [ends[k] for k in picked],
                                        batch, shared_clock=len(boots) == 1 and "" not in boots)
        out[host] = {"instances": len(picked), "throughput_ips": ips, "throughput": how}
    return out


def served_record(gid: int, plan: GroupPlan, outcome: Any, target: Target,
                  settings: dict[str, Any], policy: Any, bound_ms: float | None,
                  arrays: dict[str, Any]) -> dict[str, Any]:
    """The record of a served group (``scaler.serving``): requests' latency from their
    scheduled arrival (queueing included), the rate achieved, the generator's accuracy and
    whether the run is valid. Each instance's samples are the scheduled arrivals and
    completions of the requests it served (ns from the schedule's start), so latency
    percentiles pool across repeats like any group's."""
    import numpy as np

    per_instance = []
    served = outcome.served_by if outcome.served_by is not None else np.array([], np.int64)
    finished = ~np.isnan(outcome.done_s) if outcome.done_s is not None else np.array([], bool)
    for inst, service in zip(outcome.instances, outcome.service_s or [[]] * len(plan.instances)):
        entry = instance_entry(inst, target)
        mine = (served == inst.index) & finished
        if outcome.scheduled_s is not None:
            s = (outcome.scheduled_s[mine] * 1e9).astype(np.int64)
            e = (outcome.done_s[mine] * 1e9).astype(np.int64)
            arrays[f"g{gid}_i{inst.index}_start_ns"] = s
            arrays[f"g{gid}_i{inst.index}_end_ns"] = e
            entry.update(requests=int(mine.sum()), latency_ms=stats.latency_ms(s, e))
        if service:
            svc = np.asarray(service) * 1000.0
            entry["service_ms"] = {"queries": int(svc.size), "mean": float(svc.mean()),
                                   "p50": float(np.percentile(svc, 50)),
                                   "p99": float(np.percentile(svc, 99))}
        per_instance.append(entry)
    record: dict[str, Any] = {
        "id": gid, "placement": plan.placement, "target": target.name,
        "emulated": target.emulated, **settings, "batch": policy.max_batch,
        "instances": len(plan.instances), **plan.layout,
        "status": "complete" if outcome.complete else "partial", "errors": outcome.errors,
        "wall_s": round(outcome.wall_s, 3), "per_instance": per_instance,
        "noise": outcome.noise or None, "noisy": bool((outcome.noise or {}).get("noisy")),
        "speed_probe": getattr(outcome, "speed_probe", None) or None,
        "others_cpu_share": (outcome.noise or {}).get("others_cpu_share"),
        "target_qps": outcome.target_qps,
        "policy": {"batch": policy.batch, "max_batch": policy.max_batch,
                   "batch_timeout_ms": policy.batch_timeout_s * 1000.0},
    }
    if outcome.scheduled_s is None:
        return Group.written(record, f"group {gid}")
    lag = (outcome.issued_s - outcome.scheduled_s) * 1e9
    arrays[f"g{gid}_lag_ns"] = np.nan_to_num(lag, nan=-1).astype(np.int64)
    done = outcome.done_s[finished]
    latency = (outcome.done_s - outcome.scheduled_s)[finished] * 1000.0
    span = float(done.max() - outcome.scheduled_s[0]) if done.size else 0.0
    achieved = done.size / span if span > 0 else 0.0
    summary = stats.latency_summary(latency)
    invalid = []
    if not outcome.generator.get("kept_up"):
        invalid.append("the load generator fell behind its schedule "
                       f"(lag p99 {outcome.generator.get('lag_ms', {}).get('p99', 0):.2f} ms)")
    if outcome.drain_timed_out:
        invalid.append(f"{int((~finished).sum())} requests never served: the backlog did not "
                       "drain (the rate is beyond what the layout serves)")
    record.update(
        throughput_ips=achieved, achieved_qps=achieved, queries=int(done.size),
        requests={"scheduled": int(len(outcome.scheduled_s)), "completed": int(done.size)},
        latency_ms=summary, generator=outcome.generator,
        early_stopping_p99_ms=(summary.get("early_stopping") or {}).get("p99"),
        bound_failed=outcome.bound_failed, drain_timed_out=outcome.drain_timed_out,
        valid=not invalid, invalid_reasons=invalid,
        warnings=stats.sample_warnings(int(done.size)))
    if bound_ms is not None:
        record["latency_bound_ms"] = bound_ms
    return Group.written(record, f"group {gid}")  # a field missing or mistyped: here
