"""Terms for how a runtime's threads wait and bind (``--threading``), calibrated from runs of
the styles rather than assumed.

The base instance model (``model.calibrate``) is calibrated on ``tuned`` groups: threads that
sleep when idle and are never bound one by one. Runs of the other styles read back what
their threads did (``scaler.worker.threads``: the CPUs each compute thread was bound to, and
the share of an idle gap the runtime spent spinning), and two terms on top of the base
model explain their throughput:

- **stacked binding.** Under ``model-zoo`` (Intel Model Zoo's ``compact,1,0``) compute thread
  k of every instance is bound to the first CPU of core k. A measured group's layout is
  its read-back: each instance runs one thread on each CPU its threads were bound to, so
  SMT siblings stay idle and nothing balances the threads (a bound thread cannot move to a
  free CPU); ``q`` is the compute threads per bound CPU over all instances. On that layout
  the base model shares each CPU among its q threads; ``stack_cost`` adds the barrier
  stragglers: a parallel step ends when the last of the instance's threads, each queued
  behind q - 1 others that are not scheduled with it, has run, so a query takes
  ``1 + stack_cost x H(threads - 1) ** sync_growth x (1 - 1/q)`` times longer (the sync
  cost's thread-count law, ``rates.sync_growth``). Fitted on groups whose instances stacked.
- **spin-waiting.** A waiting thread that spins keeps its CPU from the other instances: the
  kernel's ``spin``. A style's spin is ``min(1, spin_scale x s)``, s the median read-back
  idle spin share of its instances (0 below ``SPIN_FLOOR``); one ``spin_scale`` for every
  style, fitted on groups of a spinning style whose instances share CPUs: the read-back
  spans a 0.1 s idle gap while the waits inside a query are far shorter, so a bounded
  spinner spins through a larger share of those.

Simulated layouts of a style (:func:`styled_layout`) follow the style's rules on any
machine: ``model-zoo`` gives every instance one thread per physical core of its CPUs, bound
to the core's first CPU (every unpinned instance on the same CPUs), ``defaults`` and
``tuned`` keep the placement's plan.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from affinity import Topology
from scaler.errors import UsageError
from scaler.simulate.layout import Layout, plan_layout, recorded_layout
from scaler.simulate.layout import build_layout as _build
from scaler.simulate.machine import topology_from_dict
from scaler.simulate.model import (
    InstanceModel,
    _intervals,
    closed_form_ips,
    static_features,
    virtualized,
)

TUNED = "tuned"
STACKING_STYLES = ("model-zoo",)  # styles that bind thread k of every instance to core k
# name -> (assumed value, bounds, meaning)
TERMS: dict[str, tuple[float, tuple[float, float], str]] = {
    "spin_scale": (1.0, (0.0, 1000.0),
                   "a style's in-query spin over its read-back idle spin share: its spin is "
                   "min(1, spin_scale x share)"),
    "stack_cost": (0.0, (0.0, 10.0),
                   "barrier stragglers of instances bound thread by thread to the same CPUs: "
                   "query time x (1 + stack_cost x H(threads - 1)^sync_growth x (1 - 1/q)), "
                   "q threads per bound CPU"),
}
ASSUMED = {
    "spin_scale": "1: the read-back idle spin share taken as the share of in-query waits a "
                  "thread spins through",
    "stack_cost": "0: stacked threads cost nothing beyond their CPU share unless runs show it",
}
WHY_NOT = {
    "spin_scale": "needs groups of a spinning style (read-back idle spin share >= "
                  "0.5%) whose instances share CPUs (shared, N >= 2)",
    "stack_cost": "needs groups whose instances read back stacked (thread k of every "
                  "instance bound to the same CPU: shared --threading model-zoo, N >= 2)",
}
SPIN_FLOOR = 0.005  # median read-back idle spin shares below this: the style does not spin
SPLIT = {"stacking": 0.0, "stack_cost": 0.0}  # the style terms of a split and their neutrals


def style_of(group: dict[str, Any]) -> str:
    """A group's ``--threading`` style (runs before the option: ``tuned``)."""
    return group.get("threading") or TUNED


def is_tuned(group: dict[str, Any]) -> bool:
    return style_of(group) == TUNED


def _cpus(text: Any) -> tuple[int, ...]:
    from affinity import parse_cpulist
    from affinity.errors import CpuListError

    try:
        return tuple(parse_cpulist(str(text))) if text not in (None, "") else ()
    except (CpuListError, ValueError):
        return ()


def measured_layout(topo: Topology, group: dict[str, Any]) -> tuple[Layout, tuple[bool, ...]]:
    """The layout a group ran with and which of its instances were bound thread by thread:
    the recorded partitions, except that an instance whose compute threads read back bound
    (``thread_readback.bound_cpus``, host CPU numbers) runs one thread on each CPU they were
    bound to. A VM's read-back is in the guest's numbers: its partition is kept."""
    base = recorded_layout(topo, group)
    parts, bound = [], []
    vm = virtualized(group["placement"])
    for inst, part in zip(group["per_instance"], base.partitions):
        rb = inst.get("thread_readback") or {}
        cpus = [_cpus(x) for x in rb.get("bound_cpus") or ()]
        if not vm and rb.get("per_thread_bound") and cpus and all(cpus):
            parts.append((sorted({c for x in cpus for c in x}), len(cpus),
                          part["memory_nodes"]))
            bound.append(True)
        else:
            parts.append((part["cpus"], part["threads"], part["memory_nodes"]))
            bound.append(False)
    return _build(topo, group["placement"], parts, base.oversubscription,
                  cores_per_instance=base.cores_per_instance,
                  oversubscribed=base.oversubscribed), tuple(bound)


def styled_layout(topo: Topology, placement: str, n: int, style: str, smt: bool = False,
                  cores_per_instance: int | None = None, oversubscribe: bool = False,
                  stacked: bool = True) -> tuple[Layout, tuple[bool, ...]]:
    """N instances of ``placement`` under ``style``: the placement's plan, and under
    ``model-zoo`` one thread per physical core of each instance's CPUs, bound to the core's
    first CPU in (package, core) order (``stacked`` False: the same threads left unbound
    over all the instance's CPUs, the split's neutral)."""
    lay = plan_layout(topo, placement, n, smt, cores_per_instance, oversubscribe)
    if style not in STACKING_STYLES:
        return lay, (False,) * n
    cores = sorted(topo.usable_cores, key=lambda c: c.key)
    parts = []
    for part in lay.partitions:
        mine = set(part["cpus"])
        firsts = [min(c for c in core.cpus if c in mine) for core in cores
                  if mine.intersection(core.cpus)]
        parts.append((firsts if stacked else part["cpus"], len(firsts), part["memory_nodes"]))
    return _build(topo, placement, parts, lay.oversubscription, lay.warnings,
                  lay.cores_per_instance, lay.oversubscribed), (stacked,) * n


def threads_per_cpu(layout: Layout) -> Any:
    """Per instance: the mean, over its CPUs, of the threads of all instances on each."""
    import numpy as np

    load = np.zeros(layout.cpu_core.size)
    for i in range(layout.instances):
        cpus = layout.cpus[layout.ptr[i]:layout.ptr[i + 1]]
        load[cpus] += layout.threads[i] / len(cpus)
    return np.array([float(np.mean(load[layout.cpus[layout.ptr[i]:layout.ptr[i + 1]]]))
                     for i in range(layout.instances)])


def stack_factors(layout: Layout, bound: tuple[bool, ...], v: dict[str, float]) -> Any:
    """Each instance's stacking term: 1 + stack_cost x H(threads - 1)^sync_growth x
    (1 - 1/q) for a multi-threaded instance bound thread by thread with q > 1, else 1."""
    import numpy as np

    from scaler.simulate.rates import sync_growth

    q = threads_per_cpu(layout)
    out = np.ones(layout.instances)
    cost = v.get("stack_cost", 0.0)
    for i in range(layout.instances):
        t = float(layout.threads[i])
        if bound[i] and q[i] > 1.0 and t > 1.0:
            out[i] = 1.0 + cost * sync_growth(t, v["sync_growth"]) * (1.0 - 1.0 / q[i])
    return out


@dataclass(frozen=True)
class StyleTerms:
    """The fitted style terms, the read-back they rest on, and where each value came from."""

    values: dict[str, float]
    sources: dict[str, str]
    intervals: dict[str, list[float] | None]
    shares: dict[str, float]  # style -> median read-back idle spin share of its instances
    instances: dict[str, int]  # style -> instances whose spin share was read back
    stacked: dict[str, int]  # style -> groups read back stacked
    calibration: dict[str, Any] = field(default_factory=dict)

    def spin(self, style: str, scale: float | None = None) -> float:
        """The kernel's spin of ``style`` (its read-back share scaled, at most 1)."""
        share = self.shares.get(style, 0.0)
        scale = self.values["spin_scale"] if scale is None else scale
        return 0.0 if share < SPIN_FLOOR else min(1.0, scale * share)

    def spin_interval(self, style: str) -> list[float] | None:
        ci = self.intervals.get("spin_scale")
        return None if ci is None else [self.spin(style, ci[0]), self.spin(style, ci[1])]

    def values_for(self, base: dict[str, float], style: str) -> dict[str, float]:
        """The base model's values with ``style``'s spin and the stack cost."""
        if style == TUNED:
            return dict(base)
        return {**base, "spin": self.spin(style), "stack_cost": self.values["stack_cost"]}

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": {n: {"value": self.values[n], "source": self.sources[n],
                                   "interval_95": self.intervals.get(n),
                                   "meaning": TERMS[n][2]} for n in TERMS},
                "readback_spin_share": self.shares, "readback_instances": self.instances,
                "stacked_groups": self.stacked, "calibration": self.calibration}


@dataclass(frozen=True)
class _Obs:
    run: str
    group: dict[str, Any]
    style: str
    layout: Layout
    bound: tuple[bool, ...]
    sharing: bool  # some instance waits for a CPU another instance uses

    @property
    def stacked(self) -> bool:
        return any(self.bound) and self.layout.instances > 1 and bool(
            max(threads_per_cpu(self.layout)) > 1.0)


def predict_ips(base: dict[str, float], terms: StyleTerms, layout: Layout,
                bound: tuple[bool, ...], style: str, batch: int = 1,
                vm: bool | None = None) -> float:
    """Images/s of a layout of ``style`` under the base values and the style terms."""
    v = terms.values_for(base, style)
    return closed_form_ips(layout, v, batch, vm, stack_factors(layout, bound, v))


def _observations(runs: list[Any], keep: Callable[[dict[str, Any]], bool] | None
                  ) -> list[_Obs]:
    out = []
    for run in runs:
        topo = topology_from_dict(run.doc["host"]["topology"], str(run.path))
        for g in run.doc.get("groups", []):
            if is_tuned(g) or (keep is not None and not keep(g)) or g.get("simulated") \
                    or g.get("emulated") or g.get("status") != "complete" \
                    or not g.get("throughput_ips"):
                continue
            layout, bound = measured_layout(topo, g)
            waiting = static_features(layout)[1]
            out.append(_Obs(str(run.path), g, style_of(g), layout, bound,
                            bool(max(waiting) > 0)))
    return out


def readback_shares(runs: list[Any]) -> tuple[dict[str, float], dict[str, int]]:
    """Per style, the median read-back idle spin share of its instances, and how many."""
    shares: dict[str, list[float]] = {}
    for run in runs:
        for g in run.doc.get("groups", []):
            for inst in g.get("per_instance") or ():
                share = (inst.get("spin") or {}).get("share")
                if share is not None and not g.get("simulated"):
                    shares.setdefault(style_of(g), []).append(float(share))
    return ({s: statistics.median(x) for s, x in shares.items()},
            {s: len(x) for s, x in shares.items()})


def calibrate_terms(runs: list[Any], base: InstanceModel,
                    keep: Callable[[dict[str, Any]], bool] | None = None,
                    given: dict[str, float] | None = None) -> StyleTerms:
    """Fit ``spin_scale`` and ``stack_cost`` to the measured groups of styles other than
    ``tuned`` (those ``keep`` accepts), the base model held fixed: a bounded least-squares
    fit in log space, as ``model.calibrate``; each term is fitted only when the groups can
    tell it (``WHY_NOT``), else it keeps its assumption; ``given`` values are held."""
    import numpy as np
    from scipy import optimize

    given = {k: v for k, v in (given or {}).items() if k in TERMS}
    shares, counts = readback_shares(runs)
    obs = _observations(runs, keep)
    found = {
        "spin_scale": any(o.sharing and shares.get(o.style, 0.0) >= SPIN_FLOOR for o in obs),
        "stack_cost": any(o.stacked for o in obs),
    }
    names = [n for n in TERMS if found[n] and n not in given]
    values = {n: TERMS[n][0] for n in TERMS} | given
    stacked = {}
    for o in obs:
        stacked[o.style] = stacked.get(o.style, 0) + int(o.stacked)
    rms, intervals = None, {}
    if names:
        lo = [TERMS[n][1][0] for n in names]
        hi = [TERMS[n][1][1] for n in names]
        measured = np.log([o.group["throughput_ips"] for o in obs])

        def residuals(x: Any) -> Any:
            t = StyleTerms({**values, **dict(zip(names, x))}, {}, {}, shares, counts, stacked)
            return np.log([predict_ips(base.values, t, o.layout, o.bound, o.style, o.group[
                "batch"], virtualized(o.group["placement"])) for o in obs]) - measured

        best = None
        for scale in (1.0, 10.0, 100.0):  # the spin share saturates: a few starts
            x0 = np.clip([scale if n == "spin_scale" else 0.1 for n in names], lo, hi)
            trial = optimize.least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac",
                                           method="trf")
            if best is None or trial.cost < best.cost:
                best = trial
        values.update({n: float(x) for n, x in zip(names, best.x)})
        rms = float(np.sqrt(np.mean(best.fun ** 2)))
        intervals = _intervals(best, names, lo, hi)
    sources = {n: "measured" if n in names else "given" if n in given else "assumed"
               for n in TERMS}
    fitted = StyleTerms(values, sources, intervals, shares, counts, stacked)
    groups = [{"run": o.run, "style": o.style, "placement": o.group["placement"],
               "instances": o.group["instances"], "stacked": o.stacked,
               "measured_ips": o.group["throughput_ips"],
               "model_ips": predict_ips(base.values, fitted, o.layout, o.bound, o.style,
                                        o.group["batch"])} for o in obs]
    return StyleTerms(values, sources, intervals, shares, counts, stacked, {
        "groups": groups, "rms_log_error": rms,
        "not_measured": {n: WHY_NOT[n] for n in TERMS if sources[n] == "assumed"},
        "assumed_values_from": {n: ASSUMED[n] for n in TERMS if sources[n] == "assumed"}})


def check_terms_given(given: dict[str, float]) -> None:
    """UsageError for a style term given (``--assume``) outside its bounds."""
    for name, value in given.items():
        if name in TERMS:
            lo, hi = TERMS[name][1]
            if not lo <= value <= hi:
                raise UsageError(f"{name} must lie in [{lo:g}, {hi:g}], not {value:g}")


def check_style(terms: StyleTerms, style: str) -> None:
    """UsageError unless the calibration runs measured groups of ``style`` (a style other
    than ``tuned`` is simulated only from its own runs' read-back)."""
    if style != TUNED and style not in terms.instances:
        raise UsageError(f"--threading {style}: the calibration runs hold no {style} group to "
                         f"take its spin and stacking from (measure e.g. `scaler scaling "
                         f"--threading tuned,{style} --placement shared,pinned`)")


def term_lines(terms: StyleTerms, style: str) -> list[str]:
    """The style terms of ``style``, each with value, interval and source."""
    share = terms.shares.get(style)
    out = [f"style terms for --threading {style}"
           + (f" (read-back idle spin share {share:.1%}, median of "
              f"{terms.instances.get(style, 0)} instance(s); {terms.stacked.get(style, 0)} "
              "group(s) read back stacked)" if share is not None else "")]
    for name, (_, _, meaning) in TERMS.items():
        ci = terms.intervals.get(name)
        out.append(f"  {name:<12} {terms.values[name]:>9.4g}  {terms.sources[name]:<8}  "
                   + (f"95% [{ci[0]:.4g}, {ci[1]:.4g}]  " if ci else "") + meaning)
        if terms.sources[name] == "assumed":
            out.append(f"  {'':<12} {'':>9}  {'':<8}  assumed {ASSUMED[name]} "
                       f"({WHY_NOT[name]})")
    out.append(f"  spin (kernel) {terms.spin(style):.4g}")
    return out
