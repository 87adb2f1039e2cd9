"""The prediction in the report: this machine's measured runs calibrate the instance model,
which then simulates shared and pinned (or vm) instances on a named machine (``--machine
2s28c2t``, the study's 2-socket, 28-core server), of ``--cores-per-instance`` cores each when
given (12-vCPU VMs: 6 cores with ``--smt``), and splits their ratio at the largest N among
the model's terms (``explain.explain_ratio``: how much of the study's 2.04x each explains).

Everything goes through one function, :func:`extrapolate`, built from the simulator's public
functions (``model.calibrate``, ``validate.validate``, ``machine.load_machine``,
``sweep.scaling_groups``, ``explain.explain_ratio``); model terms plug in here and nowhere
else in the report.
The answer carries the held-out validation error of the calibration (the model calibrated
on the smaller instance counts of the measured scaling run predicting the larger ones), and
every parameter with its value and whether it was measured, assumed or given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.results import Run

STUDY_INSTANCES = tuple(range(1, 9))
PLACEMENTS = ("shared", "pinned")
# what the model leaves out (scaler simulate --help says the same)
NOT_MODELLED = (
    "remote memory beyond one number: numa_penalty (assumed unless runs on a multi-node host "
    "measure it) scales with an instance's remote share and the machine's cross-node load; "
    "link topology and per-page placement are not modelled",
    "time-slice quanta: the latency spread of oversubscribed layouts",
    "host noise present while calibrating (noisy calibration groups weigh like quiet ones)",
    "a different CPU: the simulated machine's cores run at core_speed times this host's "
    "(assumed 1 unless given)",
)


def _validation(scaling: Run | None, extra: list[Run], queries: int, seed: int,
                given: dict[str, float]) -> dict[str, Any]:
    """Held-out validation on the measured scaling run: the default split (instance counts
    up to cores + 1 calibrate), else all counts but the largest; the reason when neither
    leaves a point to predict."""
    from scaler.simulate import validate

    if scaling is None:
        return {"refused": "no measured scaling run: nothing to hold out"}
    counts = sorted({g["instances"] for g in scaling.doc.get("groups", [])
                     if g.get("status") == "complete"})
    splits = [None, tuple(counts[:-1])] if len(counts) > 1 else [None]
    reason = "fewer than two instance counts measured"
    for split in splits:
        try:
            report, _ = validate.validate([scaling], extra, split, queries, seed, given)
        except UsageError as exc:
            reason = str(exc)
            continue
        return report
    return {"refused": reason}


def extrapolate(runs: list[Run], machine: str, instances: tuple[int, ...] = STUDY_INSTANCES,
                given: dict[str, float] | None = None, queries: int = 50_000,
                seed: int = 0, placement: str = "pinned", cores_per_instance: int | None = None,
                smt: bool = False) -> dict[str, Any]:
    """Calibrate on the measured ``runs`` (see ``calibration.calibration_runs``), validate
    on held-out instance counts, and simulate ``shared`` and ``placement`` (instances of
    ``cores_per_instance`` cores, both SMT siblings with ``smt``) on ``machine``.

    Returns ``{"machine", "machine_source", "machine_facts", "calibration_runs",
    "parameters", "service_time_shape", "fit", "validation", "run" (a simulated
    ``Run``, not saved), "placement", "cores_per_instance", "smt", "ratios" (``placement``
    over shared at each N, model figures without an interval), "explanation" (the ratio at
    the largest N split among the model's terms, ``explain.explain_ratio``),
    "not_modelled"}``.
    """
    from scaler.report.calibration import calibration_runs
    from scaler.simulate import sweep
    from scaler.simulate.explain import STUDY, explain_ratio
    from scaler.simulate.machine import describe, load_machine
    from scaler.simulate.model import calibrate

    given = dict(given or {})
    cal, scaling = calibration_runs(runs)
    model = calibrate(cal).with_given(given)
    validation = _validation(scaling, [r for r in cal if r is not scaling], queries, seed,
                             given)
    topo, source = load_machine(machine, None, None, None)
    placements = ("shared", placement)
    groups = sweep.scaling_groups(model, topo, placements, tuple(instances), smt, queries,
                                  seed, cores_per_instance)
    requested = {"scenario": "scaling", "placements": list(placements),
                 "instances": list(instances), "smt": smt,
                 "cores_per_instance": cores_per_instance, "queries": queries, "seed": seed,
                 "machine": source, "calibration_runs": [str(r.path) for r in cal],
                 "assume": given}
    doc = sweep.run_document("scaling", model, topo, source, requested, groups)
    ips = {(g["placement"], g["instances"]): g["throughput_ips"] for g in groups}
    ratios = [{"instances": n, "shared_ips": ips[("shared", n)],
               "other_ips": ips[(placement, n)],
               "ratio": ips[(placement, n)] / ips[("shared", n)]}
              for n in instances if ips.get(("shared", n))]
    # the study's 2.04x is a yardstick only for its own experiment: fixed-size instances at
    # its N
    study = STUDY if cores_per_instance and STUDY["instances"] == max(instances) else None
    explanation = explain_ratio(model, topo, placement, "shared", tuple(instances),
                                cores_per_instance, smt, study=study)
    described = model.to_dict()
    return {
        "machine": machine, "machine_source": source, "machine_facts": describe(topo),
        "calibration_runs": [str(r.path) for r in cal],
        "parameters": described["parameters"],
        "service_time_shape": model.shape_source,
        "fit": {"groups": len(model.calibration.get("groups", [])),
                "rms_log_error": model.calibration.get("rms_log_error"),
                "not_measured": model.calibration.get("not_measured", {})},
        "validation": validation, "run": Run(Path(f"simulated-{machine}"), doc),
        "placement": placement, "cores_per_instance": cores_per_instance, "smt": smt,
        "ratios": ratios, "explanation": explanation, "not_modelled": list(NOT_MODELLED),
    }
