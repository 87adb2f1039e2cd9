"""Running scenarios from the command line: the library API that ``scaler.cli.run`` (the
scenario commands) and ``scaler.cli.suite`` share.

- :func:`command_options` turns a command's parameters (its ``locals()``) into options;
- :func:`settings_for` validates those options for one scenario and returns its ``Settings``
  (the run rules' per-scenario defaults, ``--quick``, every placement's own options);
- :func:`run_scenarios` runs scenarios into a run folder (or one suite folder), saves plots,
  prints summaries and turns a stopped or failed run into its exit code.

Heavy modules (numpy, the coordinator, matplotlib) are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from scaler import placements, threadstyles
from scaler.cli.common import emit_json, err
from scaler.cli.fleet_options import check_ssh_parallel, fleet_settings
from scaler.cli.placement_options import placement_settings
from scaler.cli.run_options import POOLED, QUICK, RULES
from scaler.errors import ScalerError, UsageError
from scaler.layoutnames import parse_isa
from scaler.settings import (
    MAX_BATCH,
    MAX_SECONDS,
    Settings,
    Stat,
    check_positive,
    parse_instances,
)

MAX_QPS = 1e7  # requests per second of the server scenario's schedule
MAX_SCHEDULE = 5e7  # requests in one schedule (an array of their arrival times)


def settings_for(scenario: str, quick: bool = False, **opts: Any) -> Settings:
    """The settings of one run of ``scenario`` from command options (by parameter name, as
    :func:`command_options` gives them); ``quick``: ``--quick``'s short run rules. Every
    bad value is a UsageError (one line)."""
    rules = dict(zip(("min_duration_s", "min_queries", "warmup_s"), RULES[scenario]))
    if quick:
        rules.update(QUICK)
    if scenario in POOLED and opts.get("repeat", 1) > 1:
        # percentiles pool every repeat's queries: the default count is for the point, not
        # for each repeat (each still lasts the minimum duration)
        rules["min_queries"] = max(-(-rules["min_queries"] // opts["repeat"]), 1)
    for key in ("min_duration_s", "min_queries", "warmup_s"):
        if opts.get(key) is not None:
            rules[key] = opts[key]
    week = MAX_SECONDS
    check_positive("--min-duration", rules["min_duration_s"], allow_zero=True, at_most=week)
    check_positive("--min-queries", rules["min_queries"], at_most=1 << 40)
    check_positive("--warmup", rules["warmup_s"], allow_zero=True, at_most=week)
    check_positive("--batch", opts.get("batch", 1), at_most=MAX_BATCH)
    check_positive("--latency-bound-ms", opts.get("latency_bound_ms", 33.3), at_most=week * 1e3)
    check_positive("--max-batch", opts.get("max_batch", 256), at_most=MAX_BATCH)
    check_positive("--ready-timeout", opts.get("ready_timeout_s", 300.0), at_most=week)
    check_positive("--stall-timeout", opts.get("stall_timeout_s", 60.0), at_most=week)
    check_positive("--repeat", opts.get("repeat", 1), at_most=1000)
    check_positive("--remeasure", opts.get("remeasure", 1), allow_zero=True, at_most=100)
    check_positive("--quiet-wait", opts.get("quiet_wait_s", 0.0), allow_zero=True, at_most=week)
    check_positive("--lock-wait", opts.get("lock_wait", 0.0), allow_zero=True, at_most=week)
    if not 0.0 <= opts.get("noise_limit", 0.05) <= 1.0:
        raise UsageError(f"--noise-limit must lie in [0, 1], not {opts['noise_limit']:g}")
    if opts.get("cores_per_instance") is not None:
        check_positive("--cores-per-instance", opts["cores_per_instance"], at_most=1 << 16)
    if opts.get("oversubscribe") and not opts.get("cores_per_instance"):
        raise UsageError("--oversubscribe goes with --cores-per-instance (balanced layouts "
                         "share cores beyond the machine's anyway)")
    try:
        stat = Stat(opts.get("stat", "p99"))
    except ValueError:
        raise UsageError(f"unknown --stat {opts.get('stat')!r}: choose from "
                         f"{', '.join(s.value for s in Stat)}") from None
    chosen = placements.parse_placements(opts.get("placement", "pinned"))
    qps = 10.0 if opts.get("target_qps") is None else opts["target_qps"]  # 0 is refused
    check_positive("--target-qps", qps, at_most=MAX_QPS)
    if (opts.get("target_qps") or 10.0) * rules["min_duration_s"] > MAX_SCHEDULE:
        raise UsageError(f"--target-qps {opts.get('target_qps') or 10.0:g} for --min-duration "
                         f"{rules['min_duration_s']:g} s schedules more than {MAX_SCHEDULE:g} "
                         "requests: lower one of them")
    if not 0 <= opts.get("seed", 0) < 2**63:
        raise UsageError(f"--seed must be from 0 to 2^63-1, not {opts.get('seed')}")
    check_positive("--batch-timeout-ms", opts.get("batch_timeout_ms", 0.0), allow_zero=True)
    if opts.get("serve_max_batch") is not None:
        check_positive("--max-batch", opts["serve_max_batch"])
    if not 0.0 < opts.get("peak_precision", 0.05) < 1.0:
        raise UsageError(f"--peak-precision must lie in (0, 1), not {opts['peak_precision']:g}")
    return Settings(
        engine=opts.get("engine"), precision=opts.get("precision", "fp32"),
        model=opts.get("model", "resnet50"), batch=opts.get("batch", 1),
        placements=chosen, threading=threadstyles.parse_threading(opts.get("threading", "tuned")),
        isa=parse_isa(opts.get("isa", "native")),
        instances=parse_instances(opts.get("instances", "1")), smt=opts.get("smt", False),
        cores_per_instance=opts.get("cores_per_instance"),
        oversubscribe=opts.get("oversubscribe", False),
        latency_bound_ms=opts.get("latency_bound_ms", 33.3), stat=stat,
        max_batch=opts.get("max_batch", 256), cache_dir=opts.get("cache_dir"),
        ready_timeout_s=opts.get("ready_timeout_s", 300.0),
        placement_options=placement_settings(opts),
        **fleet_settings(opts.get("hosts"), opts.get("fleet")),
        ssh_parallel=check_ssh_parallel(opts.get("ssh_parallel", 32)),
        repeat=opts.get("repeat", 1), remeasure=opts.get("remeasure", 1),
        noise_limit=opts.get("noise_limit", 0.05),
        quick=quick, experiment=opts.get("experiment"), target_qps=opts.get("target_qps") or 10.0,
        target_qps_given=opts.get("target_qps") is not None,
        find_peak=opts.get("find_peak", False), seed=opts.get("seed", 0),
        peak_precision=opts.get("peak_precision", 0.05),
        serve_max_batch=opts.get("serve_max_batch"),
        batch_timeout_ms=opts.get("batch_timeout_ms", 0.0),
        quiet_wait_s=opts.get("quiet_wait_s", 0.0),
        stall_timeout_s=opts.get("stall_timeout_s", 60.0),
        max_duration_s=max(600.0, 3 * rules["min_duration_s"]), **rules)


# a suite's claims: (suite folder, its runs by name) -> (summary entries, lines to print)
SuiteHook = Callable[[Path, dict[str, Any]], tuple[dict[str, Any], list[str]]]


def run_scenarios(scenarios: list[tuple[str, Any]], out: Path, as_json: bool,
                  suite: SuiteHook | None = None,
                  lock_wait: float = 0.0, no_lock: bool = False) -> None:
    """Run scenarios (name, settings) into ``out``, plot, print summaries. With ``suite``,
    the runs go into one suite folder and ``suite(folder, runs by name)`` adds its figures
    (the claims) to the summary and its lines to the output. ``lock_wait``, ``no_lock``: as
    ``--lock-wait`` and ``--no-lock``."""
    import asyncio

    import uvloop

    from scaler import interrupts, lock, plots, results, runfolders, runstate, summaries
    from scaler import scenarios as sc
    from scaler.progress import reporter

    base = runfolders.check_output_dir(out)
    runfolders.sweep_stale(base)  # what dead runs left: temporary saves, VM folders
    runstate.correct_stale(base)  # runs left "running" by a coordinator now gone
    from scaler.targets import sweep_stale

    sweep_stale()  # what dead runs' targets left (a VM's folder): each target type's own
    if suite is not None:
        base = runfolders.new_run_path(base, "suite")
        base.mkdir(parents=True)
    rep = reporter()
    prepared = [(name, s, sc.prepare(s)) for name, s in scenarios]  # validate all first
    for note in dict.fromkeys(n for _, s, _ in prepared for n in sc.notes(s)):
        err(f"scaler: note: {note}")
    done: list[Any] = []  # sessions, each added as soon as it has a run folder
    held = lock.acquire(frozenset().union(*(lock.run_cpus(s, p[1]) for _, s, p in prepared)),
                        lock_wait, no_lock, say=err)

    async def main() -> None:
        for name, settings, prep in prepared:
            session = await sc.run_scenario(name, settings, base, rep, prepared=prep,
                                            started=done, lock=held)
            if session.stopped:
                break

    try:
        try:
            interrupts.once()  # from here Ctrl-C stops the measurement, keeping what it has
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main())
        finally:
            held.release()
            runfolders.release_claims(base.parent if suite is not None else base)
            interrupts.after_measurement()  # saved: a Ctrl-C from here ends it at once
    except (asyncio.CancelledError, KeyboardInterrupt):
        # Ctrl-C again while stopping, or between scenarios: what was saved stands
        for session in done:
            session.interrupted = True
    except ScalerError as exc:  # a refusal mid-run (memory for a larger batch, a host...)
        saved = [s.path for s in done if (s.path / results.RUN_FILE).exists()]
        if saved:
            err(f"scaler: error: {' '.join(str(exc).split())}; partial results saved in "
                f"{saved[-1]}")
            raise typer.Exit(exc.exit_code) from None
        raise
    interrupted = any(s.interrupted for s in done)
    for other in held.overlaps():
        err(f"scaler: warning: another run measured on these CPUs meanwhile: {other.who()} "
            "(recorded under lock.overlaps in run.json)")

    summary_all: dict[str, Any] = {"run": str(base)} if suite is not None else {}
    runs: dict[str, Any] = {}
    for session in done:
        if not (session.path / results.RUN_FILE).exists():
            continue  # stopped before its first save
        run = results.load_run(session.path)
        runs[session.settings.experiment or session.scenario] = run
        if plots.automatic():
            try:
                plots.save_figures(plots.figures_for([run]), run.path)
            except Exception as exc:  # a plot must never cost the measurement
                err(f"scaler: warning: plots of {run.path} failed: {exc}")
        summary = run.doc["summary"]
        if suite is not None:
            summary_all[session.settings.experiment or session.scenario] = summary
        else:
            summary_all = summary
        if not as_json:  # results on stdout (| tee captures them), progress on stderr
            typer.echo("\n".join(summaries.lines(summary)))
    emulated = [s for s in done if s.emulated]
    if emulated:
        err("scaler: note: the emulated series of this run (VMs under TCG) are not timing "
            f"results; plot them beside real ones with: scaler plot {emulated[-1].path} "
            "--allow-emulated")
    extra_lines: list[str] = []
    if suite is not None:
        extra, extra_lines = suite(base, runs)
        summary_all.update(extra)
    if as_json:
        emit_json(summary_all)
    elif suite is not None:
        typer.echo("\n" + "\n".join(summaries.headline(summary_all)))
        typer.echo("\n".join(extra_lines))
    if interrupted:
        err(f"scaler: interrupted: partial results saved in {done[-1].path}")
        raise typer.Exit(129 if any(s.stop_cause != "interrupted" for s in done) else 130)
    failed = [s for s in done if s.partial_reasons]
    if failed:
        err(f"scaler: error: {failed[0].partial_reasons[0]}; partial results saved in "
            f"{failed[0].path}")
        raise typer.Exit(1)


_RENAMED = {"min_duration": "min_duration_s", "warmup": "warmup_s",
            "ready_timeout": "ready_timeout_s", "quiet_wait": "quiet_wait_s",
            "stall_timeout": "stall_timeout_s"}


def command_options(given: dict[str, Any]) -> dict[str, Any]:
    """A command's parameters (its ``locals()``) as :func:`settings_for` takes them: the
    names of the settings (``min_duration`` is ``min_duration_s``), the placements' own
    options among them, ``out`` and ``json`` left out."""
    flat = {k: v for k, v in given.items() if k != "placement_options"}
    flat.update(given.get("placement_options") or {})
    return {_RENAMED.get(k, k): v for k, v in flat.items() if k not in ("out", "json")}
