"""``scaler simulate``: a compiled discrete-event model calibrated on measured runs, with the
``--threading`` style terms (``scaler.simulate.terms``) and their held-out validation.

A thin wrapper over ``scaler.simulate``; numpy, scipy and numba are imported inside the
command function so that ``scaler --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scaler import placements
from scaler.cli.common import err, errors_to_exit, reading_runs
from scaler.cli.predict import Bound, Json, StatOpt

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
    "them: numa_penalty (0.8, from tensorflow PR #17656: a NUMA-aware ResNet50 was 1.4x "
    "faster on a 2-socket Skylake, so an instance spanning both sockets runs at about 0.71 "
    "of socket-local; remote memory: numa_penalty x remote share x cross-node load, so "
    "--assume numa_penalty=0.3 makes a fully remote instance at full cross-node load 30% "
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
    "split among the model's terms (Shapley values over the model's closed form), each "
    "with its value, 95% interval and source (measured, or assumed with its citation).",
    "With --threading model-zoo (or defaults) every simulated instance runs that style, "
    "calibrated from the runs' groups of it (scaler scaling --threading tuned,model-zoo): "
    "the base model is fitted on the tuned groups; a spinning style's threads spin through "
    "a wait only for their runtime's window (--spin-window, else read back), which a wait "
    "of (q - 1) scheduler slices on CPUs holding q threads may outlast, and under "
    "model-zoo thread k of every instance is bound to core k's first CPU (stacked: SMT "
    "siblings idle, no balancing) with stack_cost for the barrier stragglers, fitted on the "
    "styles' groups. The split then has the terms stacking, stack_cost and spin. "
    "--assume spin_window_ms=1 simulates the study's OpenMP under Model Zoo's "
    "KMP_BLOCKTIME=1 (the runs keep their own runtime's window).",
    "Not modelled: time-slice quanta (the latency spread of oversubscribed layouts), "
    "interconnect topology beyond one cross-node load, and host noise present while "
    "calibrating.",
    "With --validate RUN: calibrate on some instance counts of RUN (repeat the option for "
    "repeats of one experiment or one run per group, or give the folder holding them) and "
    "print the error of the predicted throughput at every other count (the median over "
    "repeats); runs of several --threading styles are validated per style (base model on "
    "the tuned groups, style terms on the others, at the calibration counts).",
])


def simulate(
    runs: Annotated[list[str] | None, typer.Argument(
        help="measured runs to calibrate on (e.g. a scaling run and a 1-core latency run; "
        "default: the newest measured suite under --results)")]
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
        "--assume", help="set a model parameter, NAME=VALUE (e.g. smt_gain=0.2; with "
        "runs of several --threading styles also stack_cost, or spin_window_ms: the "
        "simulated runtime's spin window, e.g. 1 for OpenMP under Model Zoo's "
        "KMP_BLOCKTIME=1)")] = None,
    spin_window: Annotated[Path | None, typer.Option(
        "--spin-window", help="with --threading: the runtime's spin windows measured here "
        "(python -m scaler.engines.ort_spin --out FILE); default: the runs' read-back")]
    = None,
    queries: Annotated[int | None, typer.Option(
        "--queries", help="simulated queries per point (default 200000; multistream "
        "20000 per probe)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    out: Annotated[Path, typer.Option("--out", help="folder to write the run into")]
    = Path("results"),
    results_dir: Annotated[Path, typer.Option(
        "--results", help="where to look for the newest measured suite when no runs are "
        "given (where `scaler suite` writes by default)")] = Path("results"),
    threading: Annotated[str, typer.Option(
        "--threading", help="scaling: the style every simulated instance runs: tuned, "
        "defaults or model-zoo (the latter two calibrated from the runs' groups of that "
        "style)")] = "tuned",
    json: Json = False,
) -> None:
    """The ``simulate`` command; its help (``SIMULATE_HELP``) says what is measured."""
    with errors_to_exit(), reading_runs([*(runs or []), *(validate or [])]):
        from scaler.results import find_runs
        from scaler.settings import check_positive, parse_instances

        given = _assumptions(assume or [])
        windows = _windows(spin_window)
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
        style = _style(threading)
        _check_choice("--scenario", scenario, ("scaling", "multistream", "server"))
        if style != "tuned" and scenario != "scaling":
            from scaler.errors import UsageError

            raise UsageError(f"--threading {style} is simulated for the scaling scenario "
                             f"only, not {scenario}")
        _check_choice("--stat", stat, ("p50", "p90", "p95", "p99", "p99.9", "mean"))
        from scaler.runsets import one_kind

        calibration = find_runs(runs or [])
        if validate and scenario == "server":
            from scaler.cli import simulate_serve

            if calibrate_on:
                from scaler.errors import UsageError

                raise UsageError("--calibrate-on is for scaling runs: a server run is "
                                 "validated on a model calibrated on the runs given")

            simulate_serve.validate_command(find_runs(validate), calibration, queries, given,
                                            out, json)
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
            from scaler.cli.simulate_steps import validate_runs

            validate_runs([r for r in held if id(r) in usable],
                          [r for r in extra if id(r) in usable], calibrate_on, queries, seed,
                          given, json, windows)
            return
        if calibration:
            calibration = one_kind(calibration, "simulate", err)
        if not calibration:  # the newest measured suite where `suite` writes (issue 26)
            from scaler.report.calibration import default_calibration

            calibration, used = default_calibration(results_dir)
            err(f"scaler: note: {used}")
        if scenario == "server":
            from scaler.cli import simulate_serve

            simulate_serve.command(calibration, given, machine, topology, sysfs_root, counts,
                          placements, smt, serving, find_peak, out, json)
            return
        from scaler.cli.simulate_steps import simulate_runs

        simulate_runs(calibration, given, machine, topology, sysfs_root, scenario, counts,
                      placements, smt, latency_bound_ms, stat, fps, max_batch, queries, seed,
                      out, json, cores_per_instance, oversubscribe, style, windows)


def _count(items: list[Any], what: str) -> str:
    return f"{len(items)} {what}{'s' if len(items) != 1 else ''}"


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


def _windows(path: Path | None) -> dict[str, Any] | None:
    """The ``ort_spin`` measurement at ``path`` (None without one)."""
    if path is None:
        return None
    from scaler.engines.ort_spin import load
    from scaler.errors import UsageError

    try:
        return load(path)
    except ValueError as exc:
        raise UsageError(f"--spin-window: {exc}") from exc


def _placements(text: str) -> tuple[str, ...]:
    from scaler.placements import parse_placements

    return parse_placements(text)


def _style(text: str) -> str:
    """The one ``--threading`` style to simulate."""
    from scaler.errors import UsageError
    from scaler.threadstyles import parse_threading

    styles = parse_threading(text)
    if len(styles) != 1:
        raise UsageError(f"--threading {text!r}: simulate runs one style at a time")
    return styles[0]


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    from scaler.errors import UsageError

    if value not in choices:
        raise UsageError(f"unknown {option} {value!r}: choose from {', '.join(choices)}")
