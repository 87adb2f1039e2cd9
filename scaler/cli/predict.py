"""``scaler fit``, ``scaler simulate`` and ``scaler capacity``: predictions from measured runs.

Thin wrappers over ``scaler.simulate``; numpy, scipy and numba are imported inside the
command functions so that ``scaler --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scaler import placements
from scaler.cli.common import emit_json, err, errors_to_exit, reading_runs

Runs = Annotated[list[str], typer.Argument(help="run folders (or suite folders holding them)")]
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
Bound = Annotated[float, typer.Option("--latency-bound-ms", help="latency bound (ms)")]
StatOpt = Annotated[str, typer.Option("--stat", help="latency statistic for the bound: "
                                                     "p50, p90, p95, p99, p99.9 or mean")]


# Paragraphs are single lines: typer's rich help keeps line breaks inside a paragraph.
SIMULATE_HELP = "\n\n".join([
    "Simulate N instances sharing a machine with a compiled discrete-event model calibrated "
    "on measured runs; writes a run folder marked simulated (with the calibration used) and "
    "plots it. With --cores-per-instance K (and --smt) pinned and vm instances are K cores "
    "each, as in the study's 12-vCPU VMs; shared instances keep the whole machine.",
    "Measured from the calibration runs: t1_ms (a batch-1 query on one core) and "
    "serial_fraction (thread scaling, Amdahl) always; memory_contention (instances sharing "
    "a node), slice_cost (single-threaded instances sharing a CPU), sync_cost "
    "(multi-threaded instances sharing CPUs), batch_cost, vm_slowdown and vm_overhead_ms "
    "only when the runs hold groups that show them, else assumed (0; 1 for batch_cost). "
    "smt_gain (0) and core_speed (1) are always assumed unless set with --assume "
    "NAME=VALUE. Results list every parameter with its source.",
    "Terms a 2-socket server shows and a small host cannot, assumed unless runs identify "
    "them: numa_penalty (0; remote memory: numa_penalty x remote share x cross-node load, "
    "so --assume numa_penalty=0.3 makes a fully remote instance at full cross-node load 30% "
    "slower; zero for instances inside the nodes their memory is bound to), sync_growth (1: "
    "sync_cost grows as H(threads-1)^sync_growth, the expected slowest of threads-1 "
    "exponential delays, so a cost measured with 2 threads is 5.3x larger at 112) and "
    "serial_sharing (1, a switch never fitted: the serial part of a query runs at the fair "
    "CPU share its thread gets beside other instances' runnable threads; 0: at one core's "
    "speed) and spin (0: the share of its waiting time a thread keeps its CPU busy; "
    "TensorFlow's pool sleeps, OpenMP spins; serial_sharing=0 with spin=1 is the model "
    "before these terms). The README section "
    "'Calibrating the simulator' lists the runs that measure each.",
    "With two or more placements the ratio of each to the baseline at the largest N is "
    "split among the model's terms (Shapley values over the model's closed form).",
    "Not modelled: time-slice quanta (the latency spread of oversubscribed layouts), "
    "interconnect topology beyond one cross-node load, and host noise present while "
    "calibrating.",
    "With --validate RUN: calibrate on some instance counts of RUN (repeat the option for "
    "repeats of one experiment or one run per group, or give the folder holding them) and "
    "print the error of the predicted throughput at every other count (the median over "
    "repeats).",
])


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


def simulate(
    runs: Annotated[list[str] | None, typer.Argument(
        help="measured runs to calibrate on (e.g. a scaling run and a 1-core latency run; "
        "default: the newest measured suite under --out)")]
    = None,
    validate: Annotated[list[str] | None, typer.Option(
        "--validate", help="measured run(s) to validate on: calibrate on some instance "
        "counts, predict the others")] = None,
    calibrate_on: Annotated[str | None, typer.Option(
        "--calibrate-on", help="instance counts to calibrate on with --validate "
        "(default: up to cores + 1)")] = None,
    machine: Annotated[str | None, typer.Option(
        "--machine", help="compact machine, e.g. 2s28c2t (sockets, cores per socket, "
        "threads per core; add Nn for nodes per socket)")] = None,
    topology: Annotated[str | None, typer.Option(
        "--topology", help="JSON of `scaler topology --json` (or a run.json)")] = None,
    sysfs_root: Annotated[str | None, typer.Option(
        "--sysfs-root", help="a sysfs tree of the machine")] = None,
    scenario: Annotated[str, typer.Option(
        "--scenario", help="scaling, multistream (fixed-rate frames, batched) or server "
        "(Poisson arrivals into one shared queue: the peak rate within the bound)")]
    = "scaling",
    instances: Annotated[str, typer.Option("--instances", help="instance counts, e.g. 1-64")]
    = "1-8",
    placement: Annotated[str, typer.Option(
        "--placement", help=f"{placements.help_text()} (comma-separated)")] = "shared,pinned",
    smt: Annotated[bool, typer.Option("--smt", help="give pinned instances SMT siblings")]
    = False,
    cores_per_instance: Annotated[int | None, typer.Option(
        "--cores-per-instance", metavar="K", help="pinned and vm instances of K physical "
        "cores each (2K CPUs with --smt), the rest of the machine idle; shared instances "
        "keep every CPU")] = None,
    oversubscribe: Annotated[bool, typer.Option(
        "--oversubscribe", help="with --cores-per-instance: let N x K exceed the cores "
        "(shared round-robin) instead of refusing")] = False,
    latency_bound_ms: Bound = 33.3,
    stat: StatOpt = "p99",
    fps: Annotated[float | None, typer.Option(
        "--fps", help="multistream: frames per second per stream (default 1000 / bound)")]
    = None,
    max_batch: Annotated[int | None, typer.Option(
        "--max-batch", help="multistream: largest batch (default 256); server: dynamic "
        "batching up to this many queued requests (default: --batch)")] = None,
    target_qps: Annotated[float | None, typer.Option(
        "--target-qps", help="server: where the peak search starts (default: half the "
        "simulated closed-loop capacity); with --no-find-peak the one rate simulated")] = None,
    find_peak: Annotated[bool, typer.Option(
        "--find-peak/--no-find-peak", help="server: search the highest rate meeting the "
        "bound (as scaler server --find-peak) and draw the hockey stick around it")] = True,
    peak_precision: Annotated[float, typer.Option(
        "--peak-precision", help="server: the search stops when the bracket is this narrow "
        "(relative)")] = 0.05,
    batch: Annotated[int, typer.Option("--batch", help="server: requests per inference")]
    = 1,
    batch_timeout_ms: Annotated[float, typer.Option(
        "--batch-timeout-ms", help="server: longest a request waits for its batch")] = 0.0,
    repeat: Annotated[int, typer.Option(
        "--repeat", help="server: simulated repeats per probe, pooled as measured")] = 1,
    assume: Annotated[list[str] | None, typer.Option(
        "--assume", help="set a model parameter, NAME=VALUE (e.g. smt_gain=0.2)")] = None,
    queries: Annotated[int | None, typer.Option(
        "--queries", help="simulated queries per point (default 200000; multistream "
        "20000 per probe)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    out: Annotated[Path, typer.Option("--out", help="folder to write the run into")]
    = Path("results"),
    json: Json = False,
) -> None:
    """The ``simulate`` command; its help (``SIMULATE_HELP``) says what is measured."""
    with errors_to_exit(), reading_runs([*(runs or []), *(validate or [])]):
        from scaler.results import find_runs
        from scaler.settings import check_positive, parse_instances

        given = _assumptions(assume or [])
        if scenario == "server":
            check_positive("--batch", batch)
            check_positive("--repeat", repeat)
            check_positive("--peak-precision", peak_precision)
            if target_qps is not None:
                check_positive("--target-qps", target_qps)
            serving = _serving(latency_bound_ms, stat, batch, max_batch or batch,
                               batch_timeout_ms, repeat, seed, peak_precision, target_qps,
                               queries)
        max_batch = 256 if max_batch is None else max_batch
        check_positive("--latency-bound-ms", latency_bound_ms)
        check_positive("--max-batch", max_batch)
        if fps is not None:
            check_positive("--fps", fps)
        if queries is not None:
            check_positive("--queries", queries)
            _at_most("--queries", queries, MAX_QUERIES)
        from scaler.settings import MAX_BATCH

        _at_most("--max-batch", max_batch, MAX_BATCH)
        if not -(2**63) < seed < 2**63:
            from scaler.errors import UsageError

            raise UsageError(f"--seed must fit in 64 bits, not {seed}")
        if cores_per_instance is not None:
            check_positive("--cores-per-instance", cores_per_instance)
        if oversubscribe and not cores_per_instance:
            from scaler.errors import UsageError

            raise UsageError("--oversubscribe goes with --cores-per-instance (balanced "
                             "layouts share cores beyond the machine's anyway)")
        counts = parse_instances(instances)
        placements = _placements(placement)
        _check_choice("--scenario", scenario, ("scaling", "multistream", "server"))
        _check_choice("--stat", stat, ("p50", "p90", "p95", "p99", "p99.9", "mean"))
        from scaler.runsets import one_kind

        calibration = find_runs(runs or [])
        if validate and scenario == "server":
            from scaler.simulate import serve

            if calibrate_on:
                from scaler.errors import UsageError

                raise UsageError("--calibrate-on is for scaling runs: a server run is "
                                 "validated on a model calibrated on the runs given")

            serve.validate_command(find_runs(validate), calibration, queries, given, out, json)
            return
        if validate:
            held, extra = find_runs(validate), []
            spilled = [r for r in calibration if r.scenario == "scaling"]
            if spilled:  # a glob after --validate spills scaling runs here
                err(f"scaler: note: simulate: {_count(spilled, 'scaling run')} given as RUN "
                    f"({spilled[0].path}{', ...' if len(spilled) > 1 else ''}) validated "
                    "with the --validate runs (calibrating on all their points would leak "
                    "the held-out ones)")
            seen = {r.path.resolve() for r in held}
            for run in calibration:
                if run.scenario != "scaling":
                    extra.append(run)
                elif run.path.resolve() not in seen:  # named twice: one run, one repeat
                    seen.add(run.path.resolve())
                    held.append(run)
            usable = {id(r) for r in one_kind([*held, *extra], "simulate", err)}
            if not any(id(r) in usable for r in held):
                from scaler.errors import UsageError

                raise UsageError("simulate --validate: no run of a real engine to validate on")
            _validate([r for r in held if id(r) in usable],
                      [r for r in extra if id(r) in usable], calibrate_on, queries, seed,
                      given, json)
            return
        if calibration:
            calibration = one_kind(calibration, "simulate", err)
        if not calibration:  # the newest measured suite under --out (issue 12)
            from scaler.report.calibration import default_calibration

            calibration, used = default_calibration(out)
            err(f"scaler: note: {used}")
        if scenario == "server":
            from scaler.simulate import serve

            serve.command(calibration, given, machine, topology, sysfs_root, counts,
                          placements, smt, serving, find_peak, out, json)
            return
        _simulate(calibration, given, machine, topology, sysfs_root, scenario, counts,
                  placements, smt, latency_bound_ms, stat, fps, max_batch, queries, seed, out,
                  json, cores_per_instance, oversubscribe)


def _count(items: list[Any], what: str) -> str:
    return f"{len(items)} {what}{'s' if len(items) != 1 else ''}"


def _validate(runs: list[Any], extra: list[Any], calibrate_on: str | None,
              queries: int | None, seed: int, given: dict[str, float], as_json: bool) -> None:
    from scaler.settings import parse_instances
    from scaler.simulate import validate

    split = parse_instances(calibrate_on) if calibrate_on else None
    report, model = validate.validate(runs, extra, split, queries or 200_000, seed, given)
    if as_json:
        emit_json(report)
    else:
        from scaler.simulate.model import parameter_lines

        typer.echo("\n".join(validate.lines(report)))
        err("\n".join(parameter_lines(model)))


def _simulate(calibration: list[Any], given: dict[str, float], machine: str | None,
              topology: str | None, sysfs_root: str | None, scenario: str,
              counts: tuple[int, ...], placements: tuple[str, ...], smt: bool,
              bound: float, stat: str, fps: float | None, max_batch: int,
              queries: int | None, seed: int, out: Path, as_json: bool,
              cores_per_instance: int | None = None, oversubscribe: bool = False) -> None:
    from scaler import plots, results, summaries
    from scaler.simulate import sweep
    from scaler.simulate.machine import load_machine
    from scaler.simulate.model import calibrate, parameter_lines

    model = calibrate(calibration, given=given)
    topo, source = load_machine(machine, topology, sysfs_root,
                                calibration[0].doc["host"]["topology"],
                                calibration[0].doc["host"].get("hostname", ""))
    interval = 1000.0 / (fps or 1000.0 / bound)
    explanations = []
    if scenario == "scaling":
        groups = sweep.scaling_groups(model, topo, placements, counts, smt,
                                      queries or 200_000, seed, cores_per_instance,
                                      oversubscribe)
        explanations = _explain(model, topo, placements, counts, smt, cores_per_instance,
                                oversubscribe)
    else:
        groups = sweep.multistream_groups(model, topo, counts, bound, stat, interval,
                                          max_batch, smt, queries or 20_000, seed,
                                          placements[0], cores_per_instance)
    requested = {"scenario": scenario, "placements": list(placements),
                 "instances": list(counts), "smt": smt,
                 "cores_per_instance": cores_per_instance, "oversubscribe": oversubscribe,
                 "latency_bound_ms": bound,
                 "stat": stat, "frame_interval_ms": interval, "max_batch": max_batch,
                 "queries": queries, "seed": seed, "machine": source,
                 "calibration_runs": [str(r.path) for r in calibration], "assume": given}
    doc = sweep.run_document(scenario, model, topo, source, requested, groups)
    if explanations:
        doc["explanations"] = explanations
    path, summary = sweep.save(doc, out)
    try:
        plots.save_figures(plots.figures_for([results.load_run(path)]), path)
    except Exception as exc:  # a plot must never cost the result
        err(f"scaler: warning: plots of {path} failed: {exc}")
    if as_json:
        emit_json({**summary, "model_parameters": {
            k: {"value": model.values[k], "source": model.sources[k]} for k in model.values},
            "explanations": explanations})
        return
    err("\n".join(parameter_lines(model)))
    typer.echo("\n".join(summaries.lines(summary)))
    if explanations:
        from scaler.simulate import explain

        for x in explanations:
            typer.echo("\n".join(explain.lines(x)))


def _explain(model: Any, topo: Any, names: tuple[str, ...], counts: tuple[int, ...],
             smt: bool, cores_per_instance: int | None, oversubscribe: bool
             ) -> list[dict[str, Any]]:
    """Each placement against the baseline (bare metal) at the largest N, split by term."""
    from scaler.placements import baseline
    from scaler.simulate.explain import STUDY, explain_ratio

    base = baseline()
    if base not in names:
        return []
    # the study's figure is a yardstick only for its own experiment: fixed-size instances
    # against the baseline, at its N
    study = STUDY if cores_per_instance and STUDY["instances"] == max(counts) else None
    return [explain_ratio(model, topo, name, base, counts, cores_per_instance, smt,
                          oversubscribe=oversubscribe, study=study)
            for name in names if name != base]


def _serving(bound: float, stat: str, batch: int, max_batch: int, timeout_ms: float,
             repeat: int, seed: int, precision: float, target_qps: float | None,
             queries: int | None) -> Any:
    from scaler.simulate.serve import ServeSettings, check_settings

    settings = ServeSettings(latency_bound_ms=bound, stat=stat, batch=batch,
                             max_batch=max_batch, batch_timeout_ms=timeout_ms, repeat=repeat,
                             seed=seed, peak_precision=precision, target_qps=target_qps,
                             queries=queries)
    check_settings(settings)
    return settings


MAX_QUERIES = 10_000_000  # simulated queries per point: memory grows with them


def _at_most(option: str, value: int, limit: int) -> None:
    from scaler.errors import UsageError

    if value > limit:
        raise UsageError(f"{option} {value} is more than {limit}")


def _assumptions(items: list[str]) -> dict[str, float]:
    from scaler.errors import UsageError

    given = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            given[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"bad --assume {item!r}: expected NAME=NUMBER, e.g. smt_gain=0.2")
    return given


def _placements(text: str) -> tuple[str, ...]:
    from scaler.placements import parse_placements

    return parse_placements(text)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    from scaler.errors import UsageError

    if value not in choices:
        raise UsageError(f"unknown {option} {value!r}: choose from {', '.join(choices)}")


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

        answer = cap.plan_capacity(find_runs(runs), target_ips, latency_bound_ms, stat,
                                   share, allow_oversubscribed)
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
