"""How much of a simulated ratio between two placements each model term explains.

The study ran N small VMs (12 vCPUs: 6 cores with their SMT siblings) against N bare-metal
instances that each used the whole 2-socket server; at N = 8 the VMs gave 2.04x the
throughput. :func:`explain_ratio` computes, for any machine, placement pair and instance
size, the two throughput curves and their ratio under an instance model, and splits the log
of the ratio at one N among the model's cost terms by Shapley values: each term's share is
its average marginal effect on log(ratio) over every order of switching the terms on, so the
shares add up exactly to log(ratio with all terms) − log(ratio with none), whatever the
terms' interactions (``sync_growth`` only acts through ``sync_cost``, for example). A term
at its neutral value (the one that switches it off) explains nothing and is left out.

Everything uses the closed form of the closed-loop kernel (``model.closed_form_ips``), so
the figures are exact for the model, free of sampling noise, and fast.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from affinity import Topology
from scaler.simulate.layout import plan_layout
from scaler.simulate.model import InstanceModel, closed_form_ips, poorly_determined

# The figure the study reports: 8 VMs of 12 vCPUs over 8 whole-machine bare-metal instances.
STUDY = {"ratio": 2.04, "instances": 8,
         "what": "8 VMs of 12 vCPUs over 8 bare-metal instances each using the whole "
                 "2-socket Xeon (VMware/Intel study, ResNet50 fp32)"}

# each cost term and the value that switches it off
NEUTRAL = {"memory_contention": 0.0, "slice_cost": 0.0, "sync_cost": 0.0, "sync_growth": 0.0,
           "serial_sharing": 0.0, "spin": 0.0, "numa_penalty": 0.0, "smt_gain": 0.0,
           "vm_slowdown": 0.0, "vm_overhead_ms": 0.0}


def explain_ratio(model: InstanceModel, topo: Topology, placement: str = "vm",
                  baseline: str = "shared", instances: tuple[int, ...] = tuple(range(1, 9)),
                  cores_per_instance: int | None = 6, smt: bool = True, at: int | None = None,
                  oversubscribe: bool = False, study: dict[str, Any] | None = STUDY,
                  style: str = "tuned", terms: Any = None) -> dict[str, Any]:
    """Curves of ``placement`` and ``baseline`` over ``instances``, their ratio at each N,
    and the Shapley split of log(ratio) at N = ``at`` (default: the largest N) among the
    model's terms that are not at their neutral value.

    Returns a dict: ``curves`` (images/s per placement per N), ``ratio`` (per N),
    ``at``, ``ratio_at``, ``ratio_without_terms`` (every term neutral: the layouts alone,
    Amdahl and fair CPU sharing), ``terms`` (one entry per active term: value, 95% interval,
    source and where an assumed value comes from, Shapley log share, factor, share of the
    log ratio, of the log ratio over the layouts alone and of the study's log 2.04 when
    ``study`` is given, and the ratio with that term alone on top of none and with all but
    it) and ``study``.

    Under a ``style`` other than ``tuned`` both placements run that ``--threading`` style
    with its fitted ``terms`` (``scaler.simulate.terms``): its spin, and under ``model-zoo``
    two more terms, ``stacking`` (thread k of every instance bound to core k's first CPU,
    against the same threads unbound over the instance's CPUs) and ``stack_cost``.
    """
    at = max(instances) if at is None else at
    if at not in instances:
        instances = tuple(sorted({*instances, at}))
    styled = style != "tuned" and terms is not None
    values = dict(terms.values_for(model.values, style) if styled else model.values)
    neutrals = dict(NEUTRAL)
    if styled:
        from scaler.simulate.spin import windowed
        from scaler.simulate.terms import SPLIT, STACKING_STYLES, stack_factors, styled_layout

        neutrals.update(SPLIT)
        values["stacking"] = 1.0 if style in STACKING_STYLES else 0.0
        layouts = {(p, n, on): styled_layout(topo, p, n, style, smt, cores_per_instance,
                                             oversubscribe, on)
                   for p in (baseline, placement) for n in instances for on in (True, False)}

        def ips(p: str, n: int, v: dict[str, float]) -> float:
            lay, bound = layouts[(p, n, bool(v["stacking"]))]
            return closed_form_ips(lay, windowed(v, lay), scale=stack_factors(lay, bound, v))
    else:
        plain = {(p, n): plan_layout(topo, p, n, smt, cores_per_instance, oversubscribe)
                 for p in (baseline, placement) for n in instances}

        def ips(p: str, n: int, v: dict[str, float]) -> float:
            return closed_form_ips(plain[(p, n)], v)

    def ratio(v: dict[str, float], n: int) -> float:
        return ips(placement, n, v) / ips(baseline, n, v)

    curves = {p: {n: ips(p, n, values) for n in instances} for p in (baseline, placement)}
    ratios = {n: curves[placement][n] / curves[baseline][n] for n in instances}
    active = [t for t, off in neutrals.items() if values.get(t, off) != off]
    neutral = {**values, **{t: neutrals[t] for t in active}}
    memo: dict[frozenset[str], float] = {}

    def log_ratio(on: frozenset[str]) -> float:
        if on not in memo:
            memo[on] = math.log(ratio({**neutral, **{t: values[t] for t in on}}, at))
        return memo[on]

    k = len(active)
    shapley = dict.fromkeys(active, 0.0)
    for size in range(k):
        weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
        for subset in itertools.combinations(active, size):
            before = log_ratio(frozenset(subset))
            for t in active:
                if t not in subset:
                    shapley[t] += weight * (log_ratio(frozenset((*subset, t))) - before)
    none = log_ratio(frozenset())
    everything = log_ratio(frozenset(active))
    study_log = math.log(study["ratio"]) if study else None
    moved = everything - none
    spin_at = terms.spin_on(style, layouts[(baseline, at, True)][0]) if styled else None
    whence = {t: _whence(model, t, style, terms if styled else None, spin_at)
              for t in neutrals}
    terms_out = [{
        "name": t, "value": spin_at[0] if t == "spin" and spin_at else values[t],
        "source": whence[t][0], "interval_95": whence[t][1],
        "from": whence[t][2],
        "neutral": neutrals[t], "log_share": shapley[t], "factor": math.exp(shapley[t]),
        "share_of_ratio": shapley[t] / everything if everything else None,
        "share_of_terms": shapley[t] / moved if moved else None,
        "share_of_study": shapley[t] / study_log if study_log else None,
        "ratio_alone": math.exp(log_ratio(frozenset({t}))),
        "ratio_without": math.exp(log_ratio(frozenset(active) - {t})),
    } for t in sorted(active, key=lambda t: -abs(shapley[t]))]
    idle = [{"name": t, "value": values.get(t, off), "source": whence[t][0]}
            for t, off in neutrals.items() if t not in active]
    return {
        "machine": topo.sysfs_root, "placement": placement, "baseline": baseline,
        "cores_per_instance": cores_per_instance, "smt": smt,
        "threading": style if styled else "tuned",
        "layout_share_of_ratio": none / everything if everything else None,
        "instances": list(instances),
        "curves": {p: {str(n): x for n, x in c.items()} for p, c in curves.items()},
        "ratio": {str(n): r for n, r in ratios.items()},
        "at": at, "ratio_at": math.exp(everything),
        "ratio_without_terms": math.exp(none),
        "layout_share_of_study": none / study_log if study_log else None,
        "terms": terms_out, "inactive_terms": idle, "study": study,
    }


def _whence(model: InstanceModel, name: str, style: str, terms: Any,
            spin_at: tuple[float, str] | None = None) -> tuple[str, list[float] | None, str]:
    """A term's source (measured, assumed or given), its 95% interval when measured, and
    where its value comes from: the runs, or the assumption's citation."""
    from scaler.simulate.parameters import SOURCES

    if terms is not None and name in ("stacking", "stack_cost", "spin"):
        from scaler.simulate.terms import ASSUMED

        share, count = terms.shares.get(style, 0.0), terms.instances.get(style, 0)
        if name == "stacking":
            n = terms.stacked.get(style, 0)
            return ("measured" if n else "assumed", None,
                    f"read back stacked in {n} {style} group(s) of the runs" if n else
                    f"the style's definition: no {style} group of the runs read back stacked")
        if name == "spin":
            own = terms.windows.get(style)
            given = terms.given_window()
            src = "given" if given is not None else own["source"] if own else "assumed"
            text = spin_at[1] if spin_at else ""
            ident = terms.calibration.get("spin_window_identified")
            return (src, spin_at[2] if spin_at else None,
                    f"{style} spins (read-back idle spin share {share:.2%}, median of "
                    f"{count} instance(s)); on the baseline at this N: {text}"
                    + ("" if ident in (True, None) else "; the window's cut is not "
                       f"identified on the calibration runs: {ident}"))
        src = terms.sources["stack_cost"]
        return (src, terms.intervals.get("stack_cost") if src == "measured" else None,
                "fitted on the styles' groups" if src == "measured" else
                f"assumed {ASSUMED['stack_cost']}")
    src = model.sources.get(name, "assumed")
    intervals = model.calibration.get("intervals_95") or {}
    if src == "measured":
        return src, intervals.get(name), "fitted on the calibration runs' groups"
    if src == "given":
        return src, None, "given with --assume"
    return src, None, f"assumed {SOURCES.get(name, 'the neutral value')}"


def lines(x: dict[str, Any]) -> list[str]:
    """The explanation as a table: the curves and ratio per N, then each term's share."""
    top, base = x["placement"], x["baseline"]
    size = (f"{x['cores_per_instance']} cores{' + SMT' if x['smt'] else ''} each"
            if x["cores_per_instance"] else "the machine shared out evenly")
    out = [f"{top} ({size}) over {base} on {x['machine']} (model closed form, no sampling "
           "noise; a model figure, not a measurement)",
           f"  {'N':>3} {base + ' img/s':>13} {top + ' img/s':>13} {top + '/' + base:>10}"]
    for n in x["instances"]:
        key = str(n)
        r = x["ratio"][key]
        mark = "  (slower)" if round(r, 2) < 1 else ""
        out.append(f"  {n:>3} {x['curves'][base][key]:>13.1f} {x['curves'][top][key]:>13.1f} "
                   f"{r:>9.2f}x{mark}")
    study = x["study"]
    head = f"  at N={x['at']}: {x['ratio_at']:.2f}x"
    if study:
        head += f" (the study: {study['ratio']:.2f}x at N={study['instances']})"
    head += f"; the layouts alone (every cost term off): {x['ratio_without_terms']:.2f}x"
    if study:
        head += f" = {x['layout_share_of_study']:.0%} of log {study['ratio']:.2f}"
    out.append(head)
    if x.get("threading", "tuned") != "tuned":
        out.append(f"  both placements run --threading {x['threading']}")
    layouts = x.get("layout_share_of_ratio")
    if layouts is not None:
        out.append(f"  of the log ratio at N={x['at']}: the layouts alone {layouts:.0%}, "
                   "each term below its 'of ratio' share (the shares add up to 100%)")
    out.append(f"  {'term':<18} {'value':>9} {'95% interval':<19} {'source':<9} "
               f"{'factor':>7} {'of ratio':>9} {'of terms':>9}"
               + (f" {'of study':>9}" if study else "") + f" {'alone':>7} {'without':>8}")
    weak = False
    for t in x["terms"]:
        source = t["source"]
        if poorly_determined(t["value"], t.get("interval_95")):
            source, weak = source + "*", True
        ci = t.get("interval_95")
        ci_text = f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "-"
        terms = "-" if t["share_of_terms"] is None else f"{t['share_of_terms']:.0%}"
        of_ratio = "-" if t.get("share_of_ratio") is None else f"{t['share_of_ratio']:.0%}"
        out.append(f"  {t['name']:<18} {t['value']:>9.4g} {ci_text:<19} {source:<9} "
                   f"{t['factor']:>6.3f}x {of_ratio:>9} {terms:>9}"
                   + (f" {t['share_of_study']:>8.0%}" if study else "")
                   + f" {t['ratio_alone']:>6.2f}x {t['ratio_without']:>7.2f}x")
    out.append("  factor: the term's Shapley share of the ratio (factors multiply to the ratio "
               "over the layouts alone); of ratio: its share of the log ratio; of terms: its "
               "share of the change in log over the layouts alone"
               + ("; of study: its share of log " + f"{study['ratio']:.2f}" if study else "")
               + "; alone: the ratio with only this term on; without: with every term on "
               "but this one")
    if weak:
        out.append("  *: measured, but its 95% interval is wider than the value: the "
                   "calibration runs hardly tell it")
    out.append("  where each value comes from:")
    out += [f"    {t['name']}: {t.get('from') or t['source']}" for t in x["terms"]]
    if x.get("inactive_terms"):
        out.append("  at their neutral value, explaining nothing here: " + ", ".join(
            f"{t['name']}={t['value']:g} ({t['source']})" for t in x["inactive_terms"]))
    return out
