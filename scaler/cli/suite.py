"""``scaler suite``: every comparison of the study on this machine, and the claims table.

A thin wrapper: ``scaler.suite`` says which runs the study's comparisons need and turns them
into claims; the runs go through the same code as the scenario commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scaler.cli.common import IsaOpt, ThreadingOpt, err, errors_to_exit
from scaler.cli.fleet_options import SshParallel
from scaler.cli.placement_options import with_placement_options
from scaler.cli.run_options import (
    Batch,
    Bound,
    CacheDir,
    CoresPerInstance,
    Engine,
    FleetOpt,
    Hosts,
    Instances,
    Json,
    LockWait,
    MaxBatch,
    MinDuration,
    MinQueries,
    Model,
    NoiseLimit,
    NoLock,
    Out,
    Oversubscribe,
    QuietWait,
    ReadyTimeout,
    Repeat,
    Smt,
    StallTimeout,
    StatOpt,
    Warmup,
)
from scaler.cli.runner import command_options, run_scenarios, settings_for

Quick = Annotated[bool, typer.Option(
    "--quick", help="a smoke run in about two minutes: short windows, one repeat, N = 1,2, "
    "batch 8, int8 layouts, p90 multistream (options given explicitly stay)")]
WithVms = Annotated[bool, typer.Option(
    "--vm", help="measure real VMs too even without hardware virtualization (emulated, about "
    "100x slower, labelled); with KVM they are measured anyway")]
Precisions = Annotated[str, typer.Option(
    "--precisions", help="precisions of the throughput and multistream runs (fp32 first; "
    "bf16 is dropped where the CPU lacks it)")]
ScalingInstances = Annotated[str, typer.Option(
    "--scaling-instances", help="instance counts of the scaling run (default: --instances)")]
LayoutPrecision = Annotated[str, typer.Option(
    "--layout-precision", help="precision of the bare-metal against VM-like runs (latency and "
    "scaling; the study's: fp32; a faster one shortens the suite)")]
StudyRepeat = Annotated[int | None, typer.Option(
    "--study-repeat", help="repeats of the run of bare metal as the study ran it (shared and "
    "pinned under --threading tuned,model-zoo at the scaling run's largest N; default: "
    "--repeat)")]
SearchRepeat = Annotated[int | None, typer.Option(
    "--multistream-repeat", help="repeats of each multistream probe (default: --repeat; a "
    "search's probes run one after another and need 662 queries each for p99)")]


@with_placement_options
def suite(quick: Quick = False, instances: Instances = "1-8",
          scaling_instances: ScalingInstances = "", layout_precision: LayoutPrecision = "fp32",
          multistream_repeat: SearchRepeat = None, study_repeat: StudyRepeat = None,
          batch: Batch = 1024,
          latency_bound_ms: Bound = 33.3, stat: StatOpt = "p99", max_batch: MaxBatch = 256,
          precisions: Precisions = "fp32,int8,bf16", engine: Engine = None,
          model: Model = "resnet50", smt: Smt = False,
          cores_per_instance: CoresPerInstance = None, oversubscribe: Oversubscribe = False,
          vm: WithVms = False, repeat: Repeat = 3, min_duration: MinDuration = None,
          min_queries: MinQueries = None, warmup: Warmup = None,
          noise_limit: NoiseLimit = 0.05, quiet_wait: QuietWait = 0.0,
          cache_dir: CacheDir = None, ready_timeout: ReadyTimeout = 300.0,
          stall_timeout: StallTimeout = 60.0, threading: ThreadingOpt = "tuned",
          isa: IsaOpt = "native",
          hosts: Hosts = None, fleet: FleetOpt = None,
          ssh_parallel: SshParallel = 32, out: Out = Path("results"),
          json: Json = False, lock_wait: LockWait = 0.0, no_lock: NoLock = False,
          **placement_options: Any) -> None:
    """The study's four comparisons on this machine (bare metal against VM-like, fp32
    against int8), the claims table beside the study's figures, plots and a report."""
    with errors_to_exit():
        from scaler import suite as suite_mod

        o = _quick(locals()) if quick else dict(locals())
        layout_by_quick = o["layout_precision"] != layout_precision
        given = command_options(o)
        for key in ("instances", "scaling_instances", "batch", "latency_bound_ms", "stat",
                    "max_batch", "precisions", "vm", "layout_precision",
                    "multistream_repeat", "study_repeat"):
            given.pop(key)
        per_scenario = {
            "latency": {},
            "throughput": {"batch": o["batch"]},
            "scaling": {"instances": o["scaling_instances"] or o["instances"]},
            "multistream": {"instances": o["instances"], "latency_bound_ms":
                            o["latency_bound_ms"], "stat": o["stat"],
                            "max_batch": o["max_batch"],
                            "repeat": o["multistream_repeat"] or o["repeat"]},
        }
        precisions, layout_precision, vm = o["precisions"], o["layout_precision"], o["vm"]

        def make(scenario: str, **options: Any) -> Any:
            return settings_for(scenario, **{**given, **per_scenario[scenario], **options})

        skipped: dict[str, str] = {}
        chosen = _precisions(precisions, make, skipped)
        vm_like = _vm_like(make, vm, skipped)
        if layout_precision not in chosen and layout_by_quick:
            layout_precision = chosen[0]  # --quick's int8 where the suite runs no int8
        if layout_precision not in chosen:
            from scaler.errors import UsageError

            raise UsageError(f"--layout-precision {layout_precision}: not among the "
                             f"precisions this suite runs ({', '.join(chosen)})")
        generations = _generations(make, skipped) if "int8" in chosen else None
        if o["study_repeat"] is not None:
            from scaler.settings import check_positive

            check_positive("--study-repeat", o["study_repeat"], at_most=1000)
        study = _study(make, o["threading"], (layout_precision, *chosen), skipped)
        if study is not None and o["study_repeat"] is not None:
            study["repeat"] = o["study_repeat"]
        plan = suite_mod.experiments(make, vm_like, chosen, skipped, layout_precision,
                                     generations, study)
        for name, why in skipped.items():
            if why:
                err(f"scaler: note: suite: {name} left out: {why}")
        run_scenarios([(e.scenario, e.settings) for e in plan], out, json,
             suite=lambda folder, runs: _claims(folder, runs, skipped, study),
             lock_wait=lock_wait, no_lock=no_lock)


# --quick: a smoke run of every experiment in about two minutes (whatever the user set
# explicitly stays as set)
QUICK_SUITE = {"repeat": 1, "instances": "1,2", "batch": 8, "layout_precision": "int8",
               "precisions": "fp32,int8", "stat": "p90", "max_batch": 8}


def _quick(values: dict[str, Any]) -> dict[str, Any]:
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(suite).parameters.items()}
    return {k: QUICK_SUITE[k] if k in QUICK_SUITE and v == defaults[k] else v
            for k, v in values.items()}


def _precisions(text: str, make: Any, skipped: dict[str, str]) -> tuple[str, ...]:
    """fp32 first, then each precision an engine runs on this CPU (others left out, saying
    why)."""
    from affinity import read_isa
    from scaler.engines import EngineError, EngineSpec, check_spec
    from scaler.errors import UsageError

    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if "fp32" not in names:
        raise UsageError("--precisions must include fp32: the study compares against it")
    out = []
    for precision in names:
        settings = make("throughput", precision=precision)
        try:
            check_spec(EngineSpec(engine=settings.engine or "auto", precision=precision,
                                  model=settings.model), read_isa())
        except EngineError as exc:
            if precision == "fp32":
                raise
            skipped[f"throughput-{precision}"] = str(exc)
            continue
        out.append(precision)
    return tuple(sorted(out, key=lambda p: p != "fp32"))


def _generations(make: Any, skipped: dict[str, str]) -> str | None:
    """The engine that runs fp32 capped at the study's 1st-generation ISA and int8 at its
    2nd's on this CPU (``suite.GENERATIONS``): the asked ``--engine`` if it can, else the
    first registered one; None, saying why, when none can."""
    from affinity import read_isa
    from scaler import suite as suite_mod
    from scaler.engines import EngineError, EngineSpec, check_spec
    from scaler.engines.registry import engines

    settings = make("throughput")
    names = [settings.engine] if settings.engine else [
        e.name for e in engines().values() if e.infers and e.isa_caps]
    why = "no engine here caps its kernels' ISA (openvino and tf do)"
    for name in names:
        if not engines()[name].infers if name in engines() else False:
            why = f"engine {name} runs no kernels to cap"
            continue
        try:
            for _, precision, cap in suite_mod.GENERATIONS:
                check_spec(EngineSpec(engine=name, precision=precision, model=settings.model,
                                      isa=cap), read_isa())
        except EngineError as exc:
            why = str(exc)
            continue
        return name
    skipped["throughput-generations"] = why
    return None


def _study(make: Any, threading: str, precisions: tuple[str, ...], skipped: dict[str, str]
           ) -> dict[str, Any] | None:
    """The run of bare metal as the study ran it (``scaler.suite_study``): its engine (the
    asked ``--engine``, else one whose runtime binds and spins itself), precision (the
    scaling run's if that engine runs it) and the one instance count (the scaling claim's:
    8 if swept, else the largest). None when ``--threading`` already sweeps ``model-zoo``
    (the scaling run holds it) or no engine can run it here (said in ``skipped``)."""
    from affinity import read_isa
    from scaler import suite_study
    from scaler.engines import EngineError, EngineSpec, check_spec
    from scaler.engines.base import installed_version
    from scaler.engines.registry import engines
    from scaler.threadstyles import parse_threading

    if suite_study.STYLE in parse_threading(threading):
        return None
    settings = make("scaling")

    def can_run(engine: str | None, precision: str) -> str | None:
        known = engines().get(engine or "")
        if known and known.packages and installed_version(known.packages) is None:
            return f"{engine} is not installed"
        try:
            check_spec(EngineSpec(engine=engine or "auto", precision=precision,
                                  model=settings.model, threading=suite_study.STYLE),
                       read_isa())
        except EngineError as exc:
            return str(exc)
        return None

    picked = suite_study.pick_engine(settings.engine, tuple(dict.fromkeys(precisions)),
                                     can_run)
    if picked is None:
        skipped[suite_study.STUDY_RUN] = (f"no engine here runs --threading "
                                          f"{suite_study.STYLE} at these precisions")
        return None
    n = 8 if 8 in settings.instances else max(settings.instances)
    return {**picked.to_dict(), "instances": n}


def _vm_like(make: Any, asked: bool, skipped: dict[str, str]) -> tuple[str, ...]:
    """The placements set against bare metal, as each declares (``scaler.suite_sides``)."""
    from scaler import suite_sides
    from scaler.errors import UsageError

    sides = suite_sides.vm_like(make("latency"), asked, skipped)
    if not sides:
        raise UsageError("no placement joins the suite as the VM-like side here: "
                         f"{'; '.join(skipped.values()) or 'none declares it'}")
    return sides


def _claims(folder: Path, runs: dict[str, Any], skipped: dict[str, str],
            study: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The claims of the suite's runs: saved in ``suite.json``, and as lines."""
    from scaler import suite as suite_mod

    if not runs:
        return {}, []
    topology = next(iter(runs.values())).doc["host"]["topology"]
    table = suite_mod.claims(runs, topology, skipped, study)
    document = {"run": str(folder), "runs": {k: str(r.path) for k, r in runs.items()},
                "claims": table, "skipped": skipped, "study": study}
    path = suite_mod.save(folder, document)
    report, report_lines = _report(folder)
    lines = ["", *suite_mod.claim_lines(table), "", f"suite summary: {path}", *report_lines]
    return {"claims": table, "skipped": skipped, **report}, lines


def _report(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The HTML report beside the suite (``scaler.report``, issue 12): its path for the JSON
    summary and the lines to print. A report that fails costs nothing measured: it says so."""
    from scaler.report import write_report

    try:
        path, problems = write_report([folder])
    except Exception as exc:
        return {}, [f"report: not written ({type(exc).__name__}: {' '.join(str(exc).split())})"]
    return {"report": str(path)}, [*(f"report: warning: {p}" for p in problems),
                                   f"report: {path}"]
