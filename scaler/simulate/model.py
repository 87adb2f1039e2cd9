"""The instance model and its calibration from measured runs.

A query takes ``(t1 · (1 + b·(batch − 1)) + vm_overhead) · slowdown`` milliseconds, where t1
is one image alone on one dedicated core and the slowdown (``rates.slowdown``) depends on the
layout and who else is busy. Calibration is a bounded least-squares fit, in log space, of
the throughput every measured group would have under the model to the throughput it had.
A parameter is fitted only when the measured groups can tell it apart from the others
(rules in :func:`_identifiable`); otherwise it keeps its stated assumption, and every result
says which parameters were measured, assumed or given on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from scaler.errors import UsageError
from scaler.simulate.layout import Layout, recorded_layout
from scaler.simulate.machine import topology_from_dict
from scaler.simulate.parameters import FITTED, PARAMETERS, SOURCES, check_given

SHAPE_POINTS = 1001
_PROBS = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
_KEYS = ("min", "p50", "p90", "p95", "p99", "p99.9", "max")


def virtualized(placement: str) -> bool:
    """Whether the vm_* terms apply to a placement's instances (unknown ones: no)."""
    from scaler.placements import find

    known = find(placement)
    return bool(known and known.virtualized)


@dataclass(frozen=True)
class Observation:
    """One measured group: its recorded layout, the per-instance load features with every
    instance busy and every thread runnable (``rates.features``) and its throughput."""

    run: str
    group: dict[str, Any]
    layout: Layout
    e: Any
    waiting: Any
    mem: Any
    remote: Any = None

    @property
    def batch(self) -> int:
        return int(self.group["batch"])

    @property
    def vm(self) -> bool:
        return virtualized(self.group["placement"])


@dataclass(frozen=True)
class InstanceModel:
    engine: str
    precision: str
    model: str
    values: dict[str, float]
    sources: dict[str, str]
    shape: tuple[float, ...]
    shape_source: str
    calibration: dict[str, Any] = field(default_factory=dict)

    def params(self) -> Any:
        """The kernel's parameter vector (see ``rates.P_*``)."""
        return _params(self.values)

    def work_ms(self, batch: int) -> float:
        """Mean work of one query in ms at slowdown 1 on the simulated machine."""
        v = self.values
        return v["t1_ms"] / v["core_speed"] * (1.0 + v["batch_cost"] * (batch - 1))

    def instance_arrays(self, layout: Layout, batch: int) -> tuple[Any, Any, Any]:
        """Per-instance work (ms), per-query extra (ms) and vm slowdown factor."""
        import numpy as np

        n, vm = layout.instances, virtualized(layout.placement)
        v = self.values
        return (np.full(n, self.work_ms(batch)),
                np.full(n, v["vm_overhead_ms"] if vm else 0.0),
                np.full(n, 1.0 + v["vm_slowdown"] if vm else 1.0))

    def shape_array(self) -> Any:
        import numpy as np

        return np.asarray(self.shape)

    def with_given(self, given: dict[str, float]) -> InstanceModel:
        """Values set on the command line (``--assume NAME=VALUE``) replace model values
        (``calibrate(..., given=...)`` also holds them fixed while fitting the others)."""
        check_given(given)
        return replace(self, values={**self.values, **given},
                       sources={**self.sources, **dict.fromkeys(given, "given")})

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine, "precision": self.precision, "model": self.model,
            "parameters": {name: {"value": self.values[name], "source": self.sources[name],
                                  "meaning": PARAMETERS[name][2]} for name in PARAMETERS},
            "service_time_shape": {"source": self.shape_source,
                                   "quantiles_over_mean": _thin(self.shape)},
            "calibration": self.calibration,
        }


def _thin(shape: tuple[float, ...]) -> dict[str, float]:
    """A readable subset of the shape table for results."""
    last = len(shape) - 1
    return {f"p{100 * k / last:g}": round(shape[k], 4)
            for k in (0, last // 10, last // 2, int(last * 0.9), int(last * 0.99), last)}


def observations(runs: list[Any], keep: Callable[[dict[str, Any]], bool] | None = None
                 ) -> tuple[list[Observation], list[str]]:
    """The usable measured groups of runs, and one note per group left out."""


    obs, notes = [], []
    for run in runs:
        topo = topology_from_dict(run.doc["host"]["topology"], str(run.path))
        for g in run.doc.get("groups", []):
            if keep is not None and not keep(g):
                continue
            label = f"{run.path.name}: {g.get('label', g['placement'])}"
            if g.get("simulated"):
                notes.append(f"{label}: simulated, not a measurement")
            elif g.get("emulated"):
                notes.append(f"{label}: emulated VM timing, not a measurement")
            elif g.get("status") != "complete" or not g.get("throughput_ips"):
                notes.append(f"{label}: not complete")
            else:
                layout = recorded_layout(topo, g)
                obs.append(Observation(str(run.path), g, layout, *static_features(layout)))
    return obs, notes


def static_features(layout: Layout) -> tuple[Any, Any, Any, Any]:
    """Cores' worth, waiting share, node load and remote share of each instance with every
    instance busy and every thread runnable (``rates.features``, no SMT gain)."""
    import numpy as np

    from scaler.simulate import rates

    n = layout.instances
    e, waiting, mem, serial, remote = (np.zeros(n) for _ in range(5))
    rates.features(layout.ptr, layout.cpus, layout.threads, layout.mptr, layout.mnodes,
                 np.ones(n, np.bool_), np.ones(n), layout.cpu_core, layout.core_node,
                 layout.node_size, 0.0, 0.0, layout.n_cores, e, waiting, mem, serial,
                 remote)
    return e, waiting, mem, remote


def _identifiable(obs: list[Observation]) -> dict[str, str]:
    """Which parameters the groups can measure, each with the reason (else why not)."""
    free = [(round(float(e), 3), round(float(m), 3)) for o in obs if o.batch == 1
            for e, w, m in zip(o.e, o.waiting, o.mem) if w == 0]
    cores_worth = {e for e, _ in free}
    mem_at = {}
    for e, m in free:
        mem_at.setdefault(e, set()).add(m)
    sliced = [o for o in obs for w, t in zip(o.waiting, o.layout.threads) if w > 0 and t == 1]
    synced = [o for o in obs for w, t in zip(o.waiting, o.layout.threads) if w > 0 and t > 1]
    synced_threads = {int(t) for o in obs for w, t in zip(o.waiting, o.layout.threads)
                      if w > 0 and t > 1}
    remote = [o for o in obs if o.batch == 1 and max(o.remote) > 0.01]
    local = [o for o in obs if o.batch == 1 and max(o.remote) <= 0.01]
    vm_batches = {o.batch for o in obs if o.vm}
    found = {
        "serial_fraction": len(cores_worth) >= 2,
        "memory_contention": any(len(ms) >= 2 for ms in mem_at.values()),
        "slice_cost": bool(sliced),
        "sync_cost": bool(synced),
        "batch_cost": any(o.batch > 1 for o in obs),
        "vm_slowdown": bool(vm_batches),
        "vm_overhead_ms": len(vm_batches) >= 2 and any(o.batch > 1 for o in obs if not o.vm),
        "numa_penalty": bool(remote) and bool(local),
        "sync_growth": len(synced_threads) >= 2,
        "serial_sharing": False,
        "spin": len(synced_threads) >= 2,
    }
    why_not = {
        "serial_fraction": "needs batch-1 groups at two core counts per instance",
        "memory_contention": "needs the same cores per instance with the rest of the node "
                             "idle and busy (e.g. a 1-core latency run and 1-core pinned "
                             "instances side by side)",
        "slice_cost": "needs single-threaded instances sharing a CPU (pinned, N > cores)",
        "sync_cost": "needs multi-threaded instances sharing CPUs (shared, N >= 2)",
        "batch_cost": "needs a group with batch > 1 (throughput or multistream run)",
        "vm_slowdown": "needs vm groups measured on real hardware",
        "vm_overhead_ms": "needs vm groups on real hardware at two batch sizes and a batch > 1 "
                          "group outside vms (else it cannot be told from the batch cost)",
        "numa_penalty": "needs batch-1 groups on a machine of 2+ NUMA nodes with instances "
                        "whose CPUs lie outside their memory node (shared across sockets) "
                        "beside groups whose do not (shared confined to one socket, pinned "
                        "in one node): see README, 'Calibrating the simulator'",
        "sync_growth": "needs multi-threaded instances sharing CPUs at two or more thread "
                       "counts (shared runs at a fixed N confined to 7, 14, 28, 56, 112 "
                       "CPUs): see README, 'Calibrating the simulator'",
        "serial_sharing": "a switch between two models, never fitted: compare --assume "
                          "serial_sharing=0 and 1 with --validate",
        "spin": "needs multi-threaded instances sharing CPUs at two or more thread counts "
                "(shared runs confined to different CPU counts): at one thread count it "
                "trades off with sync_cost",
    }
    return {name: ("measured" if ok else why_not[name]) for name, ok in found.items()}


def calibrate(runs: list[Any], keep: Callable[[dict[str, Any]], bool] | None = None,
              given: dict[str, float] | None = None) -> InstanceModel:
    """Fit the instance model to the measured groups of ``runs`` (those ``keep`` accepts),
    holding the ``given`` values (``--assume``) fixed: the other parameters are fitted
    under them, not before them.

    Raises UsageError when the runs mix engines, precisions or models, hold no usable
    group, or cannot measure t1 and the thread scaling.
    """
    import numpy as np
    from scipy import optimize

    given = dict(given or {})
    check_given(given)

    kinds = {(r.doc["effective"]["engine"], r.doc["effective"]["precision"],
              r.doc["effective"]["model"]) for r in runs}
    if len(kinds) != 1:
        raise UsageError("calibration runs mix engines, precisions or models: "
                         + "; ".join(" ".join(k) for k in sorted(kinds)))
    engine, precision, model = kinds.pop()
    obs, notes = observations(runs, keep)
    if not any(o.batch == 1 for o in obs):
        raise UsageError("no complete measured batch-1 group to calibrate on "
                         + (f"({'; '.join(notes[:3])})" if notes else ""))
    status = _identifiable(obs)
    if status["serial_fraction"] != "measured" and "serial_fraction" not in given:
        raise UsageError("cannot calibrate the thread scaling: " + status["serial_fraction"]
                         + " (a scaling run with pinned N=1 and N=2 on 2+ cores has them)")
    names = [n for n in ("t1_ms", *(n for n in FITTED[1:] if status.get(n) == "measured"))
             if n not in given]
    if not names:
        raise UsageError("every fitted parameter is given with --assume: nothing to calibrate")
    values = {n: PARAMETERS[n][0] for n in PARAMETERS} | given
    lo = [PARAMETERS[n][1][0] for n in names]
    hi = [PARAMETERS[n][1][1] for n in names]
    measured = np.array([o.group["throughput_ips"] for o in obs])

    def residuals(x: Any) -> Any:
        v = {**values, **dict(zip(names, x))}
        return np.log([_predicted_ips(o, v) for o in obs]) - np.log(measured)

    res = None
    for serial in (0.1, 0.5, 0.9):  # a few starts: thread scaling trades off with the costs
        start = {**values, "t1_ms": values["t1_ms"] or 1.0,
                 **({"serial_fraction": serial} if "serial_fraction" in names else {}),
                 **{n: 0.05 for n in names if PARAMETERS[n][0] == 0.0},
                 **({"batch_cost": 0.8} if "batch_cost" in names else {}),
                 **({"spin": 0.5} if "spin" in names else {})}
        if "t1_ms" in names:  # t1 that matches the groups on median under the other starts
            start["t1_ms"] *= float(np.median([_predicted_ips(o, start)
                                               / o.group["throughput_ips"] for o in obs]))
        x0 = np.clip([start[n] for n in names], lo, hi)
        trial = optimize.least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac",
                                       method="trf")
        if res is None or trial.cost < res.cost:
            res = trial
    values.update({n: float(x) for n, x in zip(names, res.x)})
    sources = {n: ("measured" if n in names else "given" if n in given else "assumed")
               for n in PARAMETERS}
    assumed_why = {n: SOURCES[n] for n in PARAMETERS if sources[n] == "assumed" and n in SOURCES}
    fitted = [_predicted_ips(o, values) for o in obs]
    calibration = {
        "runs": sorted({o.run for o in obs}),
        "groups": [{"run": o.run, "placement": o.group["placement"],
                    "instances": o.group["instances"], "batch": o.batch,
                    "measured_ips": float(m), "model_ips": f,
                    "error": f / float(m) - 1.0} for o, m, f in zip(obs, measured, fitted)],
        "rms_log_error": float(np.sqrt(np.mean(res.fun**2))),
        "intervals_95": fit_intervals(res, names, lo, hi),
        "not_measured": {n: why for n, why in status.items() if why != "measured"},
        "given": given,
        "assumed_values_from": assumed_why,
        "left_out": notes,
    }
    shape, shape_source = _shape(obs)
    return InstanceModel(engine, precision, model, values, sources, shape, shape_source,
                         calibration)


def fit_intervals(res: Any, names: list[str], lo: list[float], hi: list[float]
               ) -> dict[str, list[float] | None]:
    """95% intervals of the fitted values from the covariance s²(JᵀJ)⁻¹ of the log
    residuals at the solution and a Student t quantile, clipped to the bounds (None without
    more groups than fitted parameters). An interval as wide as the bounds says the groups
    cannot tell that parameter's value."""
    import numpy as np
    from scipy import stats

    m, k = res.jac.shape
    dof = m - k
    if dof <= 0:
        return dict.fromkeys(names)
    cov = np.linalg.pinv(res.jac.T @ res.jac) * (2.0 * res.cost / dof)
    half = stats.t.ppf(0.975, dof) * np.sqrt(np.maximum(np.diag(cov), 0.0))
    return {n: [float(max(x - h, a)), float(min(x + h, b))]
            for n, x, h, a, b in zip(names, res.x, half, lo, hi)}


def poorly_determined(value: float, interval: list[float] | None) -> bool:
    """A fitted value whose 95% interval is wider than twice the value (half-width over
    100%)."""
    return interval is not None and interval[1] - interval[0] > 2.0 * abs(value)


def _params(v: dict[str, float]) -> Any:
    """The kernel's parameter vector (see ``rates.P_*``)."""
    import numpy as np

    return np.array([v["serial_fraction"], v["memory_contention"], v["slice_cost"],
                     v["sync_cost"], v["smt_gain"], v["numa_penalty"], v["sync_growth"],
                     v["serial_sharing"], v["spin"]])


def _predicted_ips(o: Observation, v: dict[str, float]) -> float:
    """Images/s of a group under the model with every instance busy (the closed form of
    the kernel's closed loop)."""


    return closed_form_ips(o.layout, v, o.batch, o.vm)


def closed_form_ips(lay: Layout, v: dict[str, float], batch: int = 1,
                    vm: bool | None = None, scale: Any = None) -> float:
    """Images/s of a layout with every instance busy under parameter values ``v``: the mean
    the closed-loop kernel converges to, without its sampling noise; ``scale``: a further
    factor on each instance's query time (the style terms, ``terms.stack_factors``)."""
    import numpy as np

    from scaler.simulate import rates

    n = lay.instances
    vm = virtualized(lay.placement) if vm is None else vm
    factor = np.zeros(n)
    rates.rates(lay.ptr, lay.cpus, lay.threads, lay.mptr, lay.mnodes, np.ones(n, np.bool_),
              lay.cpu_core, lay.core_node, lay.node_size, lay.n_cores, _params(v),
              np.full(n, 1.0 + v["vm_slowdown"] if vm else 1.0), factor)
    if scale is not None:
        factor *= scale
    work = v["t1_ms"] / v["core_speed"] * (1.0 + v["batch_cost"] * (batch - 1))
    extra = v["vm_overhead_ms"] if vm else 0.0
    return float(np.sum(1000.0 * batch / ((work + extra) * factor)))


def _shape(obs: list[Observation]) -> tuple[tuple[float, ...], str]:
    """Service time over its mean at evenly spaced probabilities, from the recorded
    percentiles of the batch-1 groups whose instances did not share CPUs (median over
    groups); a constant when no group recorded them."""
    import numpy as np

    curves = []
    for o in obs:
        lat = o.group.get("latency_ms") or {}
        if o.batch != 1 or max(o.waiting) > 0 or not lat.get("mean"):
            continue
        if all(lat.get(k) is not None for k in _KEYS):
            curves.append([lat[k] / lat["mean"] for k in _KEYS])
    if not curves:
        return (1.0,) * SHAPE_POINTS, "assumed constant (no recorded percentiles)"
    points = np.maximum.accumulate(np.median(np.array(curves), axis=0))
    table = np.interp(np.linspace(0.0, 1.0, SHAPE_POINTS), _PROBS, points)
    mean = float(np.mean((table[1:] + table[:-1]) / 2))
    return tuple(float(x) for x in table / mean), (
        f"measured: latency percentiles of {len(curves)} group(s) without CPU sharing")


def parameter_lines(model: InstanceModel) -> list[str]:
    """The model's parameters, each with its value and whether it was measured."""
    cal = model.calibration
    out = [f"instance model ({model.engine} {model.precision} {model.model}): "
           f"{len(cal.get('groups', []))} measured group(s), fit rms error "
           f"{cal.get('rms_log_error', 0.0):.1%}"]
    intervals = cal.get("intervals_95") or {}
    for name, (_, _, meaning) in PARAMETERS.items():
        out.append(f"  {name:<18} {model.values[name]:>10.4g}  {model.sources[name]:<8}  "
                   f"{meaning}")
        ci = intervals.get(name)
        if ci is not None and model.sources[name] == "measured":
            weak = ("; wider than the value itself: poorly determined by these groups"
                    if poorly_determined(model.values[name], ci) else "")
            out.append(f"  {'':<18} {'':>10}  {'':<8}  95% interval [{ci[0]:.4g}, "
                       f"{ci[1]:.4g}]{weak}")
    out.append(f"  service-time shape: {model.shape_source}")
    return out
