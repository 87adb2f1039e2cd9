"""The study's bare metal in the suite's claims: VM-like against bare metal as the study ran
it (``--threading model-zoo``) and, beside it, against tuned bare metal.

The study's 2.04x set 8 VMs against 8 bare-metal instances started by Intel Model Zoo's
launcher: thread k of every instance bound to CPU k (compact), blocktime 1 ms. Tuned bare
metal (scaler's ``shared``: unbound, passive waits) is not that. The suite therefore adds one
small run, ``scaling-model-zoo``: bare metal and the first VM-like placement under ``tuned``
and ``model-zoo``, at the scaling claim's instance count only, with the engine that expresses
the study's style here (``pick_engine``: one whose runtime binds and spins itself, declared
by ``EngineType.study_style``). Each comparison sets a placement against bare metal under the
same style (the study's VMs ran the launcher too, each inside its own CPUs).

The claim's "why" names the mechanism the run read back (``scaler.threadreport``): instances
stacked thread by thread on the same CPUs, and the share of idle CPU time their runtimes
spun; a NUMA reason only when the read-back shows neither.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scaler import significance
from scaler.results import Run
from scaler.threadreport import spin_share, stacking

STUDY_RUN = "scaling-model-zoo"
STYLE = "model-zoo"
TUNED = "tuned"
SPIN_SHOWN = 0.05  # a spin share at or above this is named as a mechanism


@dataclass(frozen=True)
class StudyEngine:
    """The engine and precision of the study's run, and why (said in the claim)."""

    engine: str | None  # None: the suite's default engine for the precision
    precision: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "precision": self.precision, "why": self.why}


def pick_engine(asked: str | None, precisions: tuple[str, ...],
                can_run: Callable[[str | None, str], str | None]) -> StudyEngine | None:
    """The asked ``--engine``; else the first registered engine whose runtime binds and spins
    itself under ``model-zoo``; else the default engine (scaler then binds its compute
    threads by thread id). ``precisions``: the scaling run's first, then others;
    ``can_run(engine, precision)``: None, or why that engine cannot run it here."""
    from scaler.engines.registry import engines

    def first(name: str | None) -> str | None:
        return next((p for p in precisions if can_run(name, p) is None), None)

    if asked:
        precision = first(asked)
        if precision is None:
            return None
        known = engines().get(asked)
        if known is not None and not known.infers:
            how = "no runtime threads to bind or spin (it measures the harness only)"
        else:
            how = (known.study_style if known else "") or (
                "its runtime binds no thread and does not spin as OpenMP did, so scaler binds "
                "its compute threads by thread id (see the read-back)")
        return StudyEngine(asked, precision, f"{asked}, asked with --engine: {how}")
    for e in engines().values():
        if e.study_style and e.infers and (precision := first(e.name)) is not None:
            return StudyEngine(e.name, precision, f"{e.name}: {e.study_style}")
    precision = first(None)
    if precision is None:
        return None
    return StudyEngine(None, precision, "no engine here binds and spins its own threads as "
                       "OpenMP did: the default engine, whose compute threads scaler binds by "
                       "thread id (see the read-back)")


def study_run(runs: dict[str, Run]) -> Run | None:
    """The run holding bare metal under ``model-zoo``: the suite's study run, else a scaling
    sweep that was asked for it (``--threading tuned,model-zoo``)."""
    for name in (STUDY_RUN, "scaling"):
        run = runs.get(name)
        if run is not None and has_style(run):
            return run
    return None


def has_style(run: Run) -> bool:
    """Whether the run measured a complete point under the study's style."""
    return any(p.get("threading") == STYLE for p in complete_points(run))


def complete_points(run: Run | None) -> list[dict[str, Any]]:
    """The complete points of a run (none without a run)."""
    from scaler.summaries import doc_points

    return [p for p in doc_points(run.doc) if p.get("complete")] if run else []


def style_of(p: dict[str, Any]) -> str:
    """The threading style of a point (``tuned`` in runs from before the styles)."""
    return p.get("threading") or TUNED


def one_style(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points of ``tuned`` if there are any, else of the first style measured other than
    the study's (the sweep a tuned claim reads)."""
    styles = list(dict.fromkeys(style_of(p) for p in points))
    pick = TUNED if TUNED in styles else next((s for s in styles if s != STYLE), None)
    return [p for p in points if style_of(p) == pick]


def pair(points: list[dict[str, Any]], bare: str, side: str, style: str,
         n: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The bare-metal and VM-like points of one style at N, or None."""
    def one(placement: str) -> dict[str, Any] | None:
        return next((p for p in points if p["placement"] == placement and style_of(p) == style
                     and p["instances"] == n), None)

    a, b = one(bare), one(side)
    return (a, b) if a and b else None


def common_n(points: list[dict[str, Any]], bare: str, side: str) -> int | None:
    """8 if bare metal and the VM-like side were measured at it under the study's style,
    else the largest such count."""
    counts = [{p["instances"] for p in points if p["placement"] == place and style_of(p) == STYLE}
              for place in (bare, side)]
    both = sorted(counts[0] & counts[1])
    if not both:
        return None
    return 8 if 8 in both else both[-1]


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``b`` over ``a`` across repeats, with the conditions of either side."""
    c = significance.compare(a["repeats_ips"], b["repeats_ips"])
    return {"ratio": c["ratio"], "ci95": c["ci95"], "p_value": c["p_value"],
            "significant": c["significant"], "noisy": bool(a.get("noisy") or b.get("noisy")),
            "contended": bool(a.get("contended") or b.get("contended"))}


def mechanism(run: Run, point: dict[str, Any]) -> dict[str, Any]:
    """What the point's repeats read back: how the instances' compute threads sat (the
    kind most repeats showed), on which CPUs, bound by whom, and the median spin share."""
    ids = set(point.get("groups") or [])
    groups = [g for g in run.doc.get("groups", []) if g.get("id") in ids]
    seen = [stacking(g.get("per_instance") or []) for g in groups]
    kinds = [s["kind"] for s in seen]
    kind = max(set(kinds), key=kinds.count) if kinds else "unknown"
    spins = [s for g in groups if (s := spin_share(g.get("per_instance") or [])) is not None]
    by = sorted({(i.get("thread_readback") or {}).get("bound_by") for g in groups
                 for i in g.get("per_instance") or []} - {None})
    cpus = next((s["cpus"] for s in seen if s["kind"] == kind), [])
    partitions = sorted({str(back["process_cpus"]) for g in groups
                         for i in g.get("per_instance") or []
                         if (back := i.get("thread_readback")) and back.get("process_cpus")})
    return {"stacking": kind, "cpus": cpus, "bound_by": by, "partitions": partitions,
            "spin_share": statistics.median(spins) if spins else None,
            "repeats_read": len(groups)}


def why(n: int, stacked: dict[str, Any], tuned: dict[str, Any] | None,
        side: dict[str, Any] | None = None) -> list[str]:
    """The mechanisms the study's bare metal showed here (empty when it showed none);
    ``side``: the VM-like side's read-back (its instances' partitions)."""
    out = []
    if stacked["stacking"] == "stacked":
        by = f", bound by {' and '.join(stacked['bound_by'])}" if stacked["bound_by"] else ""
        parts = (side or {}).get("partitions") or []
        inside = (f", while each VM-like instance stayed inside its partition (CPUs "
                  f"{' / '.join(parts)})" if len(parts) > 1 else "")
        out.append(f"the study's bare metal stacked the {n} instances thread by thread on the "
                   f"same CPUs {','.join(map(str, stacked['cpus']))} (thread k of every "
                   f"instance on CPU k{by}){inside}")
    share = stacked["spin_share"]
    if share is not None and share >= SPIN_SHOWN:
        beside = ""
        if tuned and tuned.get("spin_share") is not None:
            beside = f" (tuned: {tuned['spin_share']:.0%})"
        out.append(f"its runtimes spun {share:.0%} of their idle CPU time{beside}, CPU time "
                   "the other instances on those CPUs needed")
    return out


def side_of(points: list[dict[str, Any]], bare: str, pick: Callable[..., str | None]
            ) -> str | None:
    """The VM-like placement of the study run (``pick``: ``suite_sides.vm_side``)."""
    return pick([p for p in points if style_of(p) == STYLE], bare)


def scaling(runs: dict[str, Run], ctx: dict[str, Any], tuned: dict[str, Any],
            claim: Callable[..., dict[str, Any]], pick: Callable[..., str | None],
            bare: str, study: dict[str, Any] | None) -> dict[str, Any]:
    """The scaling claim against the study's bare metal, with ``tuned`` (the sweep's claim
    against tuned bare metal) beside it; ``tuned`` alone, saying why, without a study run."""
    run = study_run(runs)
    pts = complete_points(run)
    side = side_of(pts, bare, pick) if run else None
    n = common_n(pts, bare, side) if side else None
    if run is None or side is None or n is None:
        why_not = (ctx.get(STUDY_RUN) or "its run is missing or incomplete") if run is None \
            else "the study run has no complete pair of points"
        return {**tuned, "against": "tuned bare metal", "study_missing": why_not}
    a, b = pair(pts, bare, side, STYLE, n)  # type: ignore[misc]
    c = compare(a, b)
    mz = mechanism(run, a)
    beside = tuned
    tuned_pair = pair(pts, bare, side, TUNED, n)
    tuned_mech = mechanism(run, tuned_pair[0]) if tuned_pair else None
    if tuned_pair:  # tuned bare metal in the same run, same engine: the fair neighbour
        t = compare(*tuned_pair)
        beside = claim("scaling", t["ratio"], t["ci95"], "same run and engine as the study's "
                       "comparison", compared=f"{side}-{TUNED} over {bare}-{TUNED} at N={n}",
                       p_value=t["p_value"], significant=t["significant"], noisy=t["noisy"],
                       contended=t["contended"], instances=n,
                       sweep={k: tuned.get(k) for k in ("measured", "ci95", "verdict",
                                                       "compared")})
    shown = why(n, mz, tuned_mech, mechanism(run, b))
    reasons = list(shown)
    if not shown and ctx["nodes"] == 1:
        reasons.append("one NUMA node here, and the read-back shows neither stacked threads "
                       "nor spinning: no mechanism left for the VM-like side to avoid")
    if ctx.get("cores") and n > ctx["cores"]:
        reasons.append(f"{n} instances on {ctx['cores']} cores: oversubscribed")
    engine = a.get("engine")
    reasons.append(f"engine {engine} {a.get('precision')}: " + (
        (study or {}).get("why") or "the engine the suite ran"))
    from scaler.suite_sides import stands_in

    if stands_in(side):
        reasons.append(stands_in(side))
    keep = ("test", "measured", "ci95", "verdict", "compared", "p_value", "significant",
            "noisy", "contended", "note", "instances", "sweep")
    out = claim("scaling", c["ratio"], c["ci95"], "; ".join(reasons), instances=n,
                compared=f"{side}-{STYLE} over {bare}-{STYLE} at N={n} ({engine} "
                f"{a.get('precision')})", p_value=c["p_value"], significant=c["significant"],
                noisy=c["noisy"], contended=c["contended"],
                against=f"the study's bare metal (--threading {STYLE})",
                tuned={k: beside[k] for k in keep if k in beside},
                mechanism={"study": mz, "tuned": tuned_mech}, engine=engine,
                precision=a.get("precision"), run=str(run.path))
    return out


def beside_text(c: dict[str, Any]) -> str | None:
    """``over tuned bare metal 1.03x [0.87, 1.24]: differs from ...`` (None: no such)."""
    t = c.get("tuned")
    if not t:
        return None
    if t.get("measured") is None:
        return f"over tuned bare metal: {t.get('verdict', 'not measured')}"
    shown = f"{t['measured']:.2f}x" + (f" [{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}]"
                                        if t.get("ci95") else "")
    return f"over tuned bare metal {shown}: {t['verdict']}" + (
        f" ({t['compared']})" if t.get("compared") else "")


MULTISTREAM_MISSING = (f"the suite's multistream searches run tuned bare metal only (a search per "
                       f"style would double them); `scaler suite --threading tuned,{STYLE}` "
                       "measures both")


def multistream(run: Run, ctx: dict[str, Any], claim: Callable[..., dict[str, Any]],
                bare: str, stands_in: Callable[[str], str]) -> dict[str, Any]:
    """Each side's largest throughput under the bound, VM-like over bare metal under the same
    style: against the study's bare metal where the run searched it, tuned beside it."""
    from scaler.summaries import multistream_results

    results = multistream_results(run.doc)
    pts = {(p.get("layout"), p["batch"]): p for p in complete_points(run)}
    style = {layout: style_of(p) for (layout, _), p in pts.items()}
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        key = (r["placement"], style.get(r["layout"], TUNED))
        if r["meets_bound"] and (key not in best or r["throughput_ips"]
                                 > best[key]["throughput_ips"]):
            best[key] = r

    def one(s: str) -> dict[str, Any] | None:
        side = next((k for k in best if k[0] != bare and k[1] == s), None)
        if (bare, s) not in best or side is None:
            return None
        x, y = best[(bare, s)], best[side]
        c = compare(pts[(x["layout"], x["batch"])], pts[(y["layout"], y["batch"])])
        note = "; ".join(filter(None, ["one NUMA node here" if ctx["nodes"] == 1 else "",
                                       stands_in(side[0])]))
        return claim("multistream", c["ratio"], c["ci95"], note,
                     compared=f"{y['layout']} batch {y['batch']} over {x['layout']} batch "
                     f"{x['batch']}", p_value=c["p_value"], significant=c["significant"],
                     noisy=c["noisy"], contended=c["contended"])

    styles = [TUNED, *dict.fromkeys(k[1] for k in best if k[1] not in (TUNED, STYLE))]
    tuned = next((c for s in styles if (c := one(s)) is not None), None)
    study = one(STYLE)
    if study is None:
        if tuned is None:
            return claim("multistream", None, None,
                         "no layout of one side meets the bound with int8 here",
                         results=results)
        return {**tuned, "against": "tuned bare metal", "study_missing": MULTISTREAM_MISSING}
    keep = ("measured", "ci95", "verdict", "compared", "p_value", "significant", "noisy")
    return {**study, "against": f"the study's bare metal (--threading {STYLE})",
            "tuned": {k: tuned[k] for k in keep} if tuned else
            {"measured": None, "verdict": "not measured: no tuned pair meets the bound"}}
