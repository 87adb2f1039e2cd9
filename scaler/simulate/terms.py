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
  kernel's ``spin``. A style spins when the median read-back idle spin share of its
  instances reaches ``SPIN_FLOOR``; its runtime then spins for a bounded window per wait and
  blocks, so on a layout its spin is ``min(1, window / the CPU a wait would take)``
  (``scaler.simulate.spin``: the window measured, read back or given, the wait from the
  scheduler's slice). Nothing about it is fitted: a fitted scale was not identified on a
  small machine (it sat on its bound).

Simulated layouts of a style (:func:`styled_layout`) follow the style's rules on any
machine: ``model-zoo`` gives every instance one thread per physical core of its CPUs, bound
to the core's first CPU (every unpinned instance on the same CPUs), ``defaults`` and
``tuned`` keep the placement's plan.
"""

from __future__ import annotations

import math
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
    closed_form_ips,
    fit_intervals,
    static_features,
    virtualized,
)
from scaler.simulate.spin import (
    OPENMP_SOURCE,
    SPIN_FLOOR,
    file_windows,
    fraction,
    on_layout,
    readback_windows,
    wait_cpu_ms,
    windowed,
)
from scaler.simulate.spin import readback_shares as spin_shares

TUNED = "tuned"
STACKING_STYLES = ("model-zoo",)  # styles that bind thread k of every instance to core k
# name -> (assumed value, bounds, meaning)
TERMS: dict[str, tuple[float, tuple[float, float], str]] = {
    "spin_window_ms": (math.nan, (0.0, 1e6),
                       "CPU ms a waiting thread of the simulated runtime spins before it "
                       "blocks: spin = min(1, window / the CPU a wait would take); given "
                       "only (--assume), else each style's own, measured or read back"),
    "stack_cost": (0.0, (0.0, 10.0),
                   "barrier stragglers of instances bound thread by thread to the same CPUs: "
                   "query time x (1 + stack_cost x H(threads - 1)^sync_growth x (1 - 1/q)), "
                   "q threads per bound CPU"),
}
ASSUMED = {
    "spin_window_ms": "each style's own window: " + OPENMP_SOURCE,
    "stack_cost": "0: stacked threads cost nothing beyond their CPU share unless runs show it",
}
WHY_NOT = {
    "spin_window_ms": "never fitted: the simulated runtime's window, given with --assume",
    "stack_cost": "needs groups whose instances read back stacked (thread k of every "
                  "instance bound to the same CPU: shared --threading model-zoo, N >= 2)",
}
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
    # style -> its runtime's window: ms (CPU per wait), interval, source, from
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def spin(self, style: str) -> float:
        """1 when ``style`` spins (its read-back share reaches the floor), else 0; the
        window cuts it on each layout (``spin.windowed``)."""
        return 0.0 if self.shares.get(style, 0.0) < SPIN_FLOOR else 1.0

    def given_window(self) -> float | None:
        w = self.values.get("spin_window_ms")
        return None if w is None or math.isnan(w) else float(w)

    def window(self, style: str, target: bool = True) -> float | None:
        """The window (CPU ms per wait) of ``style``'s runtime: for simulated layouts
        (``target``) the given one first, for its measured groups its own; None: unknown."""
        given = self.given_window() if target else None
        own = self.windows.get(style)
        return given if given is not None else own["ms"] if own else None

    def values_for(self, base: dict[str, float], style: str, target: bool = True
                   ) -> dict[str, float]:
        """The base model's values with ``style``'s spin, its window and the stack cost."""
        if style == TUNED:
            return dict(base)
        window = self.window(style, target)
        return {**base, "spin": self.spin(style), "stack_cost": self.values["stack_cost"],
                **({"spin_window_ms": window} if window is not None else {})}

    def spin_on(self, style: str, layout: Layout) -> tuple[float, str, list[float] | None]:
        """The kernel's spin of ``style`` on a simulated ``layout``, where it comes from, and
        its interval from the window's (``spin.on_layout``)."""
        return on_layout(self.spin(style), self.windows.get(style), self.given_window(),
                         layout)

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": {n: {"value": None if math.isnan(self.values[n])
                                   else self.values[n], "source": self.sources[n],
                                   "interval_95": self.intervals.get(n),
                                   "meaning": TERMS[n][2]} for n in TERMS},
                "readback_spin_share": self.shares, "readback_instances": self.instances,
                "spin_windows": self.windows,
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
    """Images/s of a layout of ``style`` under the base values and the style terms, with the
    style's own window (a measured group ran its own runtime, whatever is given)."""
    v = windowed(terms.values_for(base, style, target=False), layout)
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
    return spin_shares(runs, style_of)


def calibrate_terms(runs: list[Any], base: InstanceModel,
                    keep: Callable[[dict[str, Any]], bool] | None = None,
                    given: dict[str, float] | None = None,
                    windows: dict[str, Any] | None = None) -> StyleTerms:
    """Fit ``stack_cost`` to the measured groups of styles other than ``tuned`` (those
    ``keep`` accepts), the base model held fixed: a bounded least-squares fit in log space,
    as ``model.calibrate``, fitted only when the groups can tell it (``WHY_NOT``), else it
    keeps its assumption; ``given`` values are held. Each spinning style's window is the
    ``windows`` measurement's (an ``ort_spin`` file) where it has one, else the runs'
    read-back (``spin.readback_windows``)."""
    import numpy as np
    from scipy import optimize

    given = {k: v for k, v in (given or {}).items() if k in TERMS}
    shares, counts = readback_shares(runs)
    spun = readback_windows(runs, style_of) | (file_windows(windows) if windows else {})
    obs = _observations(runs, keep)
    found = {"spin_window_ms": False, "stack_cost": any(o.stacked for o in obs)}
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
            t = StyleTerms({**values, **dict(zip(names, x))}, {}, {}, shares, counts, stacked,
                           windows=spun)
            return np.log([predict_ips(base.values, t, o.layout, o.bound, o.style, o.group[
                "batch"], virtualized(o.group["placement"])) for o in obs]) - measured

        best = None
        for start in (0.1, 1.0):  # a few starts
            x0 = np.clip([start] * len(names), lo, hi)
            trial = optimize.least_squares(residuals, x0, bounds=(lo, hi), x_scale="jac",
                                           method="trf")
            if best is None or trial.cost < best.cost:
                best = trial
        values.update({n: float(x) for n, x in zip(names, best.x)})
        rms = float(np.sqrt(np.mean(best.fun ** 2)))
        intervals = fit_intervals(best, names, lo, hi)
    sources = {n: "measured" if n in names else "given" if n in given else "assumed"
               for n in TERMS}
    fitted = StyleTerms(values, sources, intervals, shares, counts, stacked, windows=spun)
    groups = [{"run": o.run, "style": o.style, "placement": o.group["placement"],
               "instances": o.group["instances"], "stacked": o.stacked,
               "measured_ips": o.group["throughput_ips"],
               "model_ips": predict_ips(base.values, fitted, o.layout, o.bound, o.style,
                                        o.group["batch"])} for o in obs]
    cut = [o for o in obs if fitted.spin(o.style) and fitted.window(o.style, False) is not None
           and fraction(fitted.window(o.style, False), wait_cpu_ms(o.layout)) < 1.0]
    return StyleTerms(values, sources, intervals, shares, counts, stacked, {
        "groups": groups, "rms_log_error": rms,
        "spin_window_cuts": len(cut),
        "spin_window_identified": bool(cut) or "no measured group's wait takes more CPU "
        "than its runtime's window, so every waiting thread spun through its waits here; "
        "the window acts only where a wait takes more (many instances stacked on a large "
        "machine, or a short window given with --assume)",
        "not_measured": {n: WHY_NOT[n] for n in TERMS if sources[n] == "assumed"},
        "assumed_values_from": {n: ASSUMED[n] for n in TERMS if sources[n] == "assumed"}},
        windows=spun)


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
        ci, value = terms.intervals.get(name), terms.values[name]
        if math.isnan(value):  # a window not given: each style's own, below
            continue
        out.append(f"  {name:<14} {value:>9.4g}  {terms.sources[name]:<8}  "
                   + (f"95% [{ci[0]:.4g}, {ci[1]:.4g}]  " if ci else "") + meaning)
        if terms.sources[name] == "assumed":
            out.append(f"  {'':<14} {'':>9}  {'':<8}  assumed {ASSUMED[name]} "
                       f"({WHY_NOT[name]})")
    own = terms.windows.get(style)
    out.append(f"  spins: {'yes' if terms.spin(style) else 'no'}; its runtime's window: "
               + (own["from"] if own else "none measured or read back (spins through "
                  "every wait: the upper bound)"))
    ident = terms.calibration.get("spin_window_identified")
    if terms.spin(style) and ident is not True and ident is not None:
        out.append(f"  the window's cut is not identified on these runs: {ident}")
    return out
