"""``scaler fit`` and ``scaler capacity``: predictions from measured runs (``scaler simulate``:
``scaler.cli.simulate``).

Thin wrappers over ``scaler.simulate``; numpy, scipy and numba are imported inside the
command functions so that ``scaler --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from scaler.cli.common import emit_json, err, errors_to_exit, reading_runs

Runs = Annotated[list[str], typer.Argument(help="run folders (or suite folders holding them)")]
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
Bound = Annotated[float, typer.Option("--latency-bound-ms", help="latency bound (ms)")]
StatOpt = Annotated[str, typer.Option("--stat", help="latency statistic for the bound: "
                                                     "p50, p90, p95, p99, p99.9 or mean")]


def fit(
    runs: Runs,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="fit points left out by default: oversubscribed, emulated, null "
        "(comma-separated or repeated)")] = None,
    json: Json = False,
) -> None:
    """Fit the Universal Scalability Law to each series (placement x engine x precision) of
    scaling runs: lambda, sigma, kappa with 95% intervals, R², peak and Amdahl ceiling.
    Oversubscribed, emulated and null-engine points are left out unless --include names
    them; a parameter the points cannot pin down is warned about."""
    with errors_to_exit(), reading_runs(runs):
        from scaler.errors import UsageError
        from scaler.results import find_runs
        from scaler.simulate import fitting
        from scaler.simulate.usl import fit_runs

        asked = fitting.parse_include(include or [])
        loaded = [r for r in find_runs(runs) if r.scenario == "scaling"]
        if not loaded:
            raise UsageError("no scaling run among the given runs")
        kept, notes = fitting.select(loaded, asked)
        fits, refused = fit_runs(kept)
        if not fits:  # one line: what was refused, and what was left out
            reasons = "; ".join(f"{r['placement']} ({r['engine']} {r['precision']}): "
                                f"{r['reason']}" for r in refused) or (
                "every point was left out")
            left = f" ({'; '.join(notes)})" if notes else ""
            raise UsageError(f"no series can be fitted: {reasons}{left}")
        for note in notes:
            err(f"scaler: note: fit: {note}")
        for f in fits:
            f["unconstrained"] = fitting.unconstrained(f)
            for w in f["unconstrained"]:
                err(f"scaler: warning: fit: {f['placement']} ({f['engine']} {f['precision']} "
                    f"{f['model']}): {w}")
        if json:
            emit_json({"fits": fits, "refused": refused, "left_out": notes})
            return
        typer.echo("\n".join(fitting.lines(fits, refused)))


def capacity(
    runs: Runs,
    target_ips: Annotated[float, typer.Option("--target-ips", help="images/s to serve")],
    latency_bound_ms: Bound,
    stat: StatOpt = "p99",
    headroom: Annotated[str, typer.Option(
        "--headroom", help="share of the servers' capacity kept free, e.g. 20% (utilisation "
        "at most 80%)")] = "20%",
    allow_oversubscribed: Annotated[bool, typer.Option(
        "--allow-oversubscribed", help="let an oversubscribed layout (more instances or "
        "threads than CPUs, time-sliced) be recommended")] = False,
    plan_threading: Annotated[str, typer.Option(
        "--plan-threading", help="also plan on unpinned layouts of these --threading styles "
        "(defaults, model-zoo: bare metal as the study ran it); otherwise they are listed as "
        "not planned on")] = "",
    json: Json = False,
) -> None:
    """Best layout per server keeping a latency bound, the servers needed for a target
    throughput with the headroom asked, per group of comparable runs (model, engine,
    precision, machine, measured or simulated); server-scenario peaks are used where a run
    has them. Null-engine, emulated and smoke runs are left out, saying why."""
    with errors_to_exit(), reading_runs(runs):
        from scaler.results import find_runs
        from scaler.settings import check_positive
        from scaler.simulate import capacity as cap

        check_positive("--target-ips", target_ips)
        check_positive("--latency-bound-ms", latency_bound_ms)
        share = cap.parse_headroom(headroom)
        styles = tuple(x.strip() for x in plan_threading.split(",") if x.strip())
        from scaler.engines.base import THREADING_STYLES
        from scaler.errors import UsageError

        for x in styles:
            if x not in THREADING_STYLES or x == "tuned":
                raise UsageError(f"--plan-threading {x}: not a style to plan on (defaults, "
                                 "model-zoo; tuned layouts are always planned on)")

        answer = cap.plan_capacity(find_runs(runs), target_ips, latency_bound_ms, stat,
                                   share, allow_oversubscribed, styles)
        for x in answer["left_out"]:
            err(f"scaler: note: capacity: left out {x['run']} ({x['what']}): {x['reason']}")
        if json:
            emit_json(answer)
        else:
            typer.echo("\n".join(cap.lines(answer)))
        if not any(c["recommendation"] for c in answer["cohorts"]):
            states = "; ".join(f"{c['model']} {c['engine']} {c['precision']} on "
                               f"{c['machine']}: {c['status']}" for c in answer["cohorts"])
            raise cap.NoLayoutMeetsBound(f"no layout to recommend for {stat} <= "
                                         f"{latency_bound_ms:g} ms ({states})")
