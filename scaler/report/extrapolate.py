"""The prediction in the report: this machine's measured runs calibrate the instance model,
which then simulates shared and pinned instances on a named machine (``--machine 2s28c2t``,
the study's 2-socket, 28-core server).

Everything goes through one function, :func:`extrapolate`, built from the simulator's public
functions (``model.calibrate``, ``validate.validate``, ``machine.load_machine``,
``sweep.scaling_groups``); new model terms (a cross-node memory penalty, fixed-size
instances, the explanation of the study's 2.04x) plug in here and nowhere else in the report.
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
    "cross-node memory traffic: an instance whose threads or memory span sockets pays "
    "nothing extra, so the model cannot explain a pinned advantage that comes from NUMA",
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
                seed: int = 0) -> dict[str, Any]:
    """Calibrate on the measured ``runs`` (see ``calibration.calibration_runs``), validate
    on held-out instance counts, and simulate ``shared`` and ``pinned`` on ``machine``.

    Returns ``{"machine", "machine_source", "machine_facts", "calibration_runs",
    "parameters", "service_time_shape", "fit", "validation", "run" (a simulated
    ``Run``, not saved), "ratios" (pinned over shared at each N, model figures without an
    interval), "not_modelled"}``.
    """
    from scaler.report.calibration import calibration_runs
    from scaler.simulate import sweep
    from scaler.simulate.machine import describe, load_machine
    from scaler.simulate.model import calibrate

    given = dict(given or {})
    cal, scaling = calibration_runs(runs)
    model = calibrate(cal).with_given(given)
    validation = _validation(scaling, [r for r in cal if r is not scaling], queries, seed,
                             given)
    topo, source = load_machine(machine, None, None, None)
    groups = sweep.scaling_groups(model, topo, PLACEMENTS, tuple(instances), False, queries,
                                  seed)
    requested = {"scenario": "scaling", "placements": list(PLACEMENTS),
                 "instances": list(instances), "smt": False, "queries": queries, "seed": seed,
                 "machine": source, "calibration_runs": [str(r.path) for r in cal],
                 "assume": given}
    doc = sweep.run_document("scaling", model, topo, source, requested, groups)
    ips = {(g["placement"], g["instances"]): g["throughput_ips"] for g in groups}
    ratios = [{"instances": n, "shared_ips": ips[("shared", n)],
               "pinned_ips": ips[("pinned", n)],
               "ratio": ips[("pinned", n)] / ips[("shared", n)]}
              for n in instances if ips.get(("shared", n))]
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
        "ratios": ratios, "not_modelled": list(NOT_MODELLED),
    }
