"""The suite: every comparison the study made, measured on this machine, and the claims table.

The study (ResNet50 on 2-socket Xeon servers, bare metal against VMs) made four comparisons:

1. a VM's batch-1 latency overhead over bare metal (1.5% or less);
2. int8 over fp32 large-batch throughput (3.49x, across two processor generations);
3. 8 VMs over 8 bare-metal instances, aggregate throughput (2.04x);
4. the largest multistream throughput under 33.3 ms, virtualized over bare metal, int8 (+9%).

The suite runs one experiment per comparison side (bare metal is ``shared``: unpinned
processes sized for the whole machine; VM-like is ``pinned``, and real VMs join where the
host has hardware virtualization or when asked), then sets each of this machine's figures,
with its 95% interval across repeats, beside the study's, with a one-line reason where they
differ. Every run lands in the suite folder; ``suite.json`` holds the claims.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler import significance, suite_sides, suite_study
from scaler.engines.kernels import run_kernels
from scaler.results import Run
from scaler.suite_sides import stands_in, vm_side
from scaler.summaries import doc_points

SUITE_FILE = "suite.json"

STUDY = {
    "latency": {"study": 1.5, "unit": "% latency overhead",
                "what": "VM batch-1 latency overhead over bare metal (study: 1.5% or less)"},
    "throughput": {"study": 3.49, "unit": "x",
                   "what": "int8 over fp32 large-batch throughput"},
    "scaling": {"study": 2.04, "unit": "x",
                "what": "8 VM-like instances over 8 bare-metal instances, images/s"},
    "multistream": {"study": 1.09, "unit": "x",
                    "what": "largest int8 throughput under the bound, VM-like over bare metal"},
}


@dataclass(frozen=True)
class Experiment:
    """One run of the suite: its name (the run folder's prefix), scenario and settings."""

    name: str
    scenario: str
    settings: Any  # scaler.settings.Settings


Make = Callable[..., Any]  # (scenario, **options) -> Settings, validated like the CLI's


# the study's two Xeon generations as ISA caps on this CPU: fp32 on the 1st (Skylake-SP:
# AVX-512), int8 on the 2nd (Cascade Lake: AVX-512 VNNI, "DL Boost")
GENERATIONS = (("throughput-fp32-skylake", "fp32", "avx512_core"),
               ("throughput-int8-cascadelake", "int8", "avx512_core_vnni"))


def experiments(make: Make, vm_like: tuple[str, ...], precisions: tuple[str, ...],
                skip: dict[str, str], layout_precision: str = "fp32",
                generations: str | None = None,
                study: dict[str, Any] | None = None) -> list[Experiment]:
    """The suite's runs. ``vm_like``: the placements set against bare metal (``pinned``, and
    ``vm`` when it runs); ``precisions``: fp32 first, then those the CPU and engines run;
    ``layout_precision``: the precision of the bare-metal against VM-like runs, latency and
    scaling (the study's ran fp32; a faster precision makes a short suite possible); ``skip``
    collects experiments left out and why; ``generations``: the engine that runs fp32 and
    int8 under the study's two generations' ISA caps here (None: none can); ``study``: the
    engine, precision and instance count of the run of bare metal as the study ran it
    (``suite_study``: bare metal and the first VM-like placement under ``tuned`` and
    ``model-zoo``, at that one count; None: left out)."""
    bare = suite_sides.bare()
    sides = ",".join((bare, *vm_like))
    out = [Experiment("latency", "latency", make("latency", placement=sides,
                                                 precision=layout_precision,
                                                 experiment="latency"))]
    for precision in precisions:
        out.append(Experiment(f"throughput-{precision}", "throughput",
                              make("throughput", placement=vm_like[0], precision=precision,
                                   experiment=f"throughput-{precision}")))
    for name, precision, cap in GENERATIONS if generations else ():
        out.append(Experiment(name, "throughput", make(
            "throughput", placement=vm_like[0], precision=precision, engine=generations,
            isa=cap, experiment=name)))
    out.append(Experiment("scaling", "scaling", make("scaling", placement=sides,
                                                     precision=layout_precision,
                                                     experiment="scaling")))
    if study is not None:
        name = suite_study.STUDY_RUN
        out.append(Experiment(name, "scaling", make(
            "scaling", placement=f"{bare},{vm_like[0]}", precision=study["precision"],
            engine=study["engine"], instances=str(study["instances"]),
            threading=f"{suite_study.TUNED},{suite_study.STYLE}", experiment=name,
            **({"repeat": study["repeat"]} if study.get("repeat") is not None else {}))))
    for precision in ("int8", "fp32"):
        if precision not in precisions:
            skip[f"multistream-{precision}"] = skip.get(f"throughput-{precision}", "")
            continue
        out.append(Experiment(f"multistream-{precision}", "multistream",
                              make("multistream", placement=",".join((bare, vm_like[0])),
                                   precision=precision,
                                   experiment=f"multistream-{precision}")))
    return out


# -- the claims -------------------------------------------------------------------------------


def claims(runs: dict[str, Run], topology: dict[str, Any], notes: dict[str, str] | None = None,
           study: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """This machine's figure for each of the study's four, from the suite's runs by name;
    ``study``: the engine of the study's run and why (``suite_study.StudyEngine``)."""
    nodes = len(topology.get("nodes") or []) or 1
    context = {"nodes": nodes, "cores": topology.get("cores"), **(notes or {}),
               "study": study}
    return [_latency(runs, context), _throughput(runs, context), _scaling(runs, context),
            _multistream(runs, context)]


def _claim(test: str, measured: float | None, ci95: list[float] | None, note: str,
           **extra: Any) -> dict[str, Any]:
    study = STUDY[test]
    verdict = "not measured"
    if measured is not None:
        verdict = "no interval (one repeat): not a finding"
        if ci95 is not None:
            verdict = _verdict(test, study["study"], ci95)
    return {"test": test, "what": study["what"], "study": study["study"],
            "measured": measured, "ci95": ci95, "unit": study["unit"], "verdict": verdict,
            "note": note, **extra}


def _verdict(test: str, study: float, ci95: list[float]) -> str:
    """How this machine's interval stands to the study's figure. "Inconclusive" when it holds
    both the study's figure and no effect at all (1x, or 0% overhead)."""
    low, high = ci95
    if test == "latency":  # the study's figure is a bound: "1.5% or less"
        if high <= study:
            return "within the study's bound"
        if low > study:
            return "differs: more overhead than the study's bound"
        return "inconclusive: the interval straddles the study's bound"
    null = 1.0
    if low <= study <= high:
        if low <= null <= high:
            return "inconclusive: the interval holds both no effect and the study's figure"
        return "consistent with the study"
    if low <= null <= high:
        return "differs from the study: no measurable effect here (the interval includes 1)"
    return "differs from the study"


def _points_of(run: Run | None) -> list[dict[str, Any]]:
    return [p for p in doc_points(run.doc) if p.get("complete")] if run else []


def _latency(runs: dict[str, Run], ctx: dict[str, Any]) -> dict[str, Any]:
    pts = suite_study.one_style(_points_of(runs.get("latency")))  # both sides of one style (tuned)
    bare = suite_sides.bare()
    side = vm_side(pts, bare)
    base = next((p for p in pts if p["placement"] == bare), None)
    mine = next((p for p in pts if p["placement"] == side), None)
    if base is None or mine is None:
        return _claim("latency", None, None, "latency run missing or incomplete")
    c = significance.compare([r["mean"] for r in base["latency_repeats"]],
                             [r["mean"] for r in mine["latency_repeats"]])
    if c["ratio"] is None:
        return _claim("latency", None, None, c.get("note", ""))
    pct = (c["ratio"] - 1.0) * 100.0
    ci = [(c["ci95"][0] - 1) * 100.0, (c["ci95"][1] - 1) * 100.0] if c["ci95"] else None
    note = stands_in(side) or "measured in real VMs against bare metal"
    if base.get("precision") != "fp32":
        note += f"; measured with {base.get('engine')} {base.get('precision')} here"
    if ci and ci[0] <= 0.0 <= ci[1]:
        note = "no measurable difference (the interval includes 0); " + note
    return _claim("latency", pct, ci, note, compared=f"{side} vs {bare}, mean batch-1 latency",
                  p_value=c["p_value"], significant=c["significant"],
                  noisy=bool(base.get("noisy") or mine.get("noisy")),
                  contended=bool(base.get("contended") or mine.get("contended")))


def _throughput(runs: dict[str, Run], ctx: dict[str, Any]) -> dict[str, Any]:
    """int8 over fp32 as the study measured it, across its two generations' ISAs (capped on
    this CPU), with this CPU's own (native) ratio beside it; the native ratio alone where
    no engine can cap here."""
    native = _native_throughput(runs, ctx)
    old = _points_of(runs.get(GENERATIONS[0][0]))
    new = _points_of(runs.get(GENERATIONS[1][0]))
    if not old or not new:
        if native["measured"] is not None:  # say why the study's own comparison is absent
            why = ctx.get("throughput-generations") or (
                "the ISA-capped runs are missing or incomplete")
            native["note"] += f"; not measured at the study's two ISAs: {why}"
        return native
    a, b = old[0], new[0]
    c = significance.compare(a["repeats_ips"], b["repeats_ips"])
    read = {name: "; ".join(run_kernels(runs[name].doc.get("groups", []))) or "not read back"
            for name, _, _ in GENERATIONS}
    note = (f"int8 capped at the 2nd generation's ISA ({GENERATIONS[1][2]}) over fp32 capped "
            f"at the 1st's ({GENERATIONS[0][2]}), both {a['engine']} on this one CPU, as the "
            "study's two Xeon generations; kernels read back: fp32 "
            f"{read[GENERATIONS[0][0]]}, int8 {read[GENERATIONS[1][0]]}")
    if native["measured"] is not None:
        shown = f"{native['measured']:.2f}x" + (
            f" [{native['ci95'][0]:.2f}, {native['ci95'][1]:.2f}]" if native["ci95"] else "")
        note += f"; at this CPU's own ISA: {shown} ({native['compared']})"
    return _claim("throughput", c["ratio"], c["ci95"], note, p_value=c["p_value"],
                  significant=c["significant"], batch=a.get("batch"),
                  compared=f"{b['engine']} int8 at {GENERATIONS[1][2]} over {a['engine']} "
                  f"fp32 at {GENERATIONS[0][2]}, batch {a.get('batch')}",
                  noisy=bool(a.get("noisy") or b.get("noisy")),
                  native={k: native.get(k) for k in ("measured", "ci95", "verdict",
                                                     "compared", "p_value")},
                  **{k: native[k] for k in ("bf16_over_fp32",) if k in native})


def _native_throughput(runs: dict[str, Run], ctx: dict[str, Any]) -> dict[str, Any]:
    fp32 = _points_of(runs.get("throughput-fp32"))
    int8 = _points_of(runs.get("throughput-int8"))
    if not fp32 or not int8:
        why = ctx.get("throughput-int8") or "a throughput run is missing or incomplete"
        return _claim("throughput", None, None, why)
    a, b = fp32[0], int8[0]
    c = significance.compare(a["repeats_ips"], b["repeats_ips"])
    note = (f"same processor here for both ({a['engine']} fp32 against {b['engine']} int8); "
            "the study's 3.49x spans two Xeon generations")
    extra = {}
    bf16 = _points_of(runs.get("throughput-bf16"))
    if bf16:
        extra["bf16_over_fp32"] = significance.compare(a["repeats_ips"],
                                                       bf16[0]["repeats_ips"])
    return _claim("throughput", c["ratio"], c["ci95"], note, p_value=c["p_value"],
                  significant=c["significant"], batch=a.get("batch"),
                  compared=f"{b['engine']} int8 over {a['engine']} fp32, batch {a.get('batch')}",
                  noisy=bool(a.get("noisy") or b.get("noisy")),
                  contended=bool(a.get("contended") or b.get("contended")), **extra)


def _scaling(runs: dict[str, Run], ctx: dict[str, Any]) -> dict[str, Any]:
    # the sweep against tuned bare metal (or the sweep's one style when asked without it);
    # a sweep asked with more styles holds the study's too: ``suite_study`` reads those
    pts = suite_study.one_style(_points_of(runs.get("scaling")))
    bare = suite_sides.bare()
    side = vm_side(pts, bare)
    both = sorted({p["instances"] for p in pts if p["placement"] == bare}
                  & {p["instances"] for p in pts if p["placement"] == side})
    if not both:
        missing = _claim("scaling", None, None, "scaling run missing or incomplete")
        return suite_study.scaling(runs, ctx, missing, _claim, vm_side, bare, ctx.get("study"))
    n = 8 if 8 in both else both[-1]
    base = next(p for p in pts if p["placement"] == bare and p["instances"] == n)
    mine = next(p for p in pts if p["placement"] == side and p["instances"] == n)
    c = significance.compare(base["repeats_ips"], mine["repeats_ips"])
    reasons = []
    if ctx["nodes"] == 1:
        reasons.append("one NUMA node here: no cross-socket memory traffic for pinning to "
                       "avoid")
    if ctx.get("cores") and n > ctx["cores"]:
        reasons.append(f"{n} instances on {ctx['cores']} cores: both layouts are "
                       "oversubscribed, time-sliced alike")
    if stands_in(side):
        reasons.append(stands_in(side))
    if base.get("precision") != "fp32":
        reasons.append(f"measured with {base.get('engine')} {base.get('precision')} here "
                       "(the study's scaling ran fp32)")
    tuned = _claim("scaling", c["ratio"], c["ci95"], "; ".join(reasons), instances=n,
                   compared=f"{side} over {bare} at N={n}", p_value=c["p_value"],
                   significant=c["significant"],
                   noisy=bool(base.get("noisy") or mine.get("noisy")),
                   contended=bool(base.get("contended") or mine.get("contended")))
    return suite_study.scaling(runs, ctx, tuned, _claim, vm_side, bare, ctx.get("study"))


def _multistream(runs: dict[str, Run], ctx: dict[str, Any]) -> dict[str, Any]:
    run = runs.get("multistream-int8")
    if run is None:
        return _claim("multistream", None, None,
                      ctx.get("multistream-int8") or "no int8 multistream run")
    return suite_study.multistream(run, ctx, _claim, suite_sides.bare(), stands_in)


def claim_lines(table: list[dict[str, Any]]) -> list[str]:
    """The claims table as text."""
    out = ["claims: the study's figures beside this machine's (95% intervals across repeats)"]
    for c in table:
        if c["measured"] is None:
            mine = "not measured"
        elif c["unit"].startswith("%"):
            mine = f"{c['measured']:+.1f}%"
            if c["ci95"]:
                mine += f" [{c['ci95'][0]:+.1f}, {c['ci95'][1]:+.1f}]"
        else:
            mine = f"{c['measured']:.2f}x"
            if c["ci95"]:
                mine += f" [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]"
        study = f"{c['study']:g}%" if c["unit"].startswith("%") else f"{c['study']:g}x"
        noisy = "  (noisy)" if c.get("noisy") else ""
        noisy += "  (rests on a contended window)" if c.get("contended") else ""
        out.append(f"  {c['test']:<12} study {study:<7} here {mine:<26} {c['verdict']}{noisy}")
        out.append(f"  {'':<12} {c['what']}" + (f"; {c['compared']}" if c.get("compared")
                                                 else ""))
        beside = suite_study.beside_text(c)
        if beside:
            out.append(f"  {'':<12} beside it: {beside}")
        if c["note"]:
            out.append(f"  {'':<12} why: {c['note']}")
        if c.get("study_missing"):
            out.append(f"  {'':<12} against the study's bare metal: not measured: "
                       f"{c['study_missing']}")
    return out


def save(folder: Path, document: dict[str, Any]) -> Path:
    """Write ``suite.json`` atomically into the suite folder."""
    from scaler.results import write_text_atomically

    path = folder / SUITE_FILE
    write_text_atomically(path, json.dumps(document, indent=1, default=str) + "\n")
    return path
