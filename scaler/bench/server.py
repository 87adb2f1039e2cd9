"""The open-loop harness's own figures (``make bench``, section ``server``), null engine.

Per instance count N (1, 2, 4; pinned partitions of this machine, oversubscribed past its
cores), through ``serving.serve_group`` on the local target as a server run uses it:

- the **ceiling**: the highest offered rate whose run stays valid as a load generator: the
  generator's lag p99 within its limit (``serving.LAG_LIMIT_S``) and every request served
  before the drain time. Found by doubling from ``START_QPS`` x N until a rate fails, then
  bisecting to ``precision``; every probe is kept;
- the **harness latency** at 10% of that ceiling: p50 and p99 from each request's scheduled
  arrival to its completion (the null engine infers nothing: all of it is harness), the
  generator's lag, and the coordinator process's CPU time per request (a relative cost:
  compare it between two trees on the same machine, not across machines).

Only ``serve_group``'s long-standing interface is used, so this module also runs on an
older tree (copy it there) for before/after rows:
``python -m scaler.bench.server --out DIR [--quick] [--instances 1,2,4]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

START_QPS = 1000.0
AT_SHARE = 0.10  # the harness latency is taken at this share of the ceiling
MAX_PROBES = 24


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def serve_null(n: int, rate: float, count: int, seed: int = 1) -> dict[str, Any]:
    """One served group of ``n`` pinned null instances; what the bench keeps of it."""
    import asyncio

    import numpy as np
    import uvloop

    from affinity import plan, read_topology
    from scaler.coordinator import RunRules
    from scaler.serving import ServePolicy, serve_group
    from scaler.targets import WorkerRequest
    from scaler.targets.local import LocalTarget
    from scaler.worker.spec import WorkerSpec

    parts = plan(read_topology(), n, oversubscribe=True).partitions
    reqs = [WorkerRequest(k, WorkerSpec(engine="null", instance=k, cpus=tuple(p.cpus),
                                        nodes=tuple(p.nodes), threads=len(p.cpus),
                                        warmup_s=0.1),
                          {"cpus": list(p.cpus), "nodes": list(p.nodes)})
            for k, p in enumerate(parts)]
    rules = RunRules(min_duration_s=0.0, min_queries=count, warmup_s=0.1, ready_timeout_s=60,
                     stall_timeout_s=30)
    cpu0 = _cpu_s()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcome = runner.run(serve_group(reqs, rules, LocalTarget(), rate, count, seed,
                                         ServePolicy()))
    cpu = _cpu_s() - cpu0
    row: dict[str, Any] = {"offered_qps": rate, "requests": count,
                           "complete": outcome.complete, "errors": outcome.errors,
                           "drain_timed_out": outcome.drain_timed_out,
                           "generator": outcome.generator,
                           "coordinator_cpu_us_per_request": cpu / count * 1e6}
    if outcome.done_s is not None:
        finished = ~np.isnan(outcome.done_s)
        lat_us = (outcome.done_s - outcome.scheduled_s)[finished] * 1e6
        span = float(outcome.done_s[finished].max()) if finished.any() else 0.0
        row.update(completed=int(finished.sum()),
                   achieved_qps=float(finished.sum() / span) if span > 0 else 0.0)
        if lat_us.size:
            row["latency_us"] = {"p50": float(np.percentile(lat_us, 50)),
                                 "p99": float(np.percentile(lat_us, 99))}
    row["ok"] = bool(outcome.complete and not outcome.drain_timed_out
                     and outcome.generator.get("kept_up")
                     and row.get("completed") == count)
    return row


def ceiling(n: int, window_s: float, precision: float, max_requests: int,
            say: Any = None) -> dict[str, Any]:
    """The highest rate ``serve_null`` keeps valid: double until one fails, bisect."""
    good, bad, probes = 0.0, None, []
    rate = START_QPS * n
    while len(probes) < MAX_PROBES:
        count = int(min(max(rate * window_s, 500), max_requests))
        row = serve_null(n, rate, count)
        probes.append(row)
        if say:
            say(f"bench: server N={n} at {rate:.0f}/s: {'ok' if row['ok'] else 'fails'}")
        if row["ok"]:
            good = rate
        else:
            bad = rate
        if bad is None:
            rate = good * 2
        elif good == 0:
            rate = bad / 2
            if rate < 10:
                break
        elif (bad - good) / good <= precision:
            break
        else:
            rate = (good + bad) / 2
    return {"ceiling_qps": good or None, "first_failing_qps": bad, "probes": probes}


def measure_server(instances: tuple[int, ...], window_s: float, precision: float,
                   max_requests: int, say: Any = None) -> dict[str, Any]:
    rows = []
    for n in instances:
        found = ceiling(n, window_s, precision, max_requests, say)
        row: dict[str, Any] = {"instances": n, **found}
        if found["ceiling_qps"]:
            rate = AT_SHARE * found["ceiling_qps"]
            row["at_10pct"] = serve_null(n, rate, int(min(max(rate * window_s * 2, 2000),
                                                          max_requests)), seed=2)
        rows.append(row)
    return {"method": "serving.serve_group, N pinned null instances, local target, uvloop; "
                      "ceiling = highest rate with generator lag p99 within its limit and "
                      "every request served; harness latency at 10% of it",
            "window_s": window_s, "precision": precision, "rows": rows}


GOAL_CEILING_QPS = 100_000.0  # issue 29's goals on 2 cores, one null instance
GOAL_P50_US = 50.0


def table_rows(section: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) rows for the bench table; the goals apply to N=1."""
    out: list[tuple[str, str, str, bool | None]] = []
    for r in section.get("rows", []):
        n = r["instances"]
        c = r.get("ceiling_qps")
        goal = n == 1
        out.append((f"open-loop ceiling, N={n} null",
                    f"{c:,.0f} requests/s" if c else "no rate kept up",
                    f">= {GOAL_CEILING_QPS:,.0f}/s" if goal else "",
                    bool(c and c >= GOAL_CEILING_QPS) if goal else None))
        at = r.get("at_10pct") or {}
        lat = at.get("latency_us")
        if lat:
            out.append((f"harness latency at 10% of the ceiling, N={n} null",
                        f"p50 {lat['p50']:.0f} µs, p99 {lat['p99']:.0f} µs; coordinator CPU "
                        f"{at['coordinator_cpu_us_per_request']:.1f} µs/request",
                        f"p50 < {GOAL_P50_US:g} µs" if goal else "",
                        lat["p50"] < GOAL_P50_US if goal else None))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaler.bench.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for server.json")
    p.add_argument("--quick", action="store_true", help="short windows, N = 1 only")
    p.add_argument("--instances", default=None, help="comma-separated counts (1,2,4)")
    args = p.parse_args(argv)
    window, precision, cap = (0.5, 0.25, 50_000) if args.quick else (2.0, 0.1, 400_000)
    counts = tuple(int(x) for x in (args.instances or ("1" if args.quick else "1,2,4"))
                   .split(","))
    began = time.monotonic()
    result = measure_server(counts, window, precision, cap,
                            say=lambda t: print(t, file=sys.stderr, flush=True))
    result["wall_s"] = round(time.monotonic() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server.json").write_text(json.dumps(result, indent=1, default=str))
    for figure, value, target, met in table_rows(result):
        print(f"| {figure} | {value} | {target} | {'' if met is None else met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
