"""The study's headline for a planner: VM-like against bare metal as the study ran it
(``--threading model-zoo``) and against tuned bare metal, in one figure and one line.

Read from every scaling run among the inputs that measured bare metal under ``model-zoo``
(the suite's ``scaling-model-zoo``, or a run asked with ``--threading tuned,model-zoo``):
at the instance count both sides share (8 if measured), the images/s of tuned bare metal,
bare metal as the study ran it, pinned under both styles and VMs where they were measured
(real ones only; VMs of another run are drawn in a panel of their own, with that run's
engine). A ratio whose interval includes 1 is printed as no measurable difference, never as
a finding.
"""

from __future__ import annotations

from typing import Any

from scaler import suite_study
from scaler.report.html import badge, esc, figure, note
from scaler.report.inputs import Inputs
from scaler.results import Run

TITLE = "The study's 2.04x: VM-like against bare metal as the study ran it"

INTRO = ("The study set 8 VMs against 8 bare-metal instances started as Intel Model Zoo's "
         "launcher started them (intra-op threads = every physical core, thread k of every "
         "instance bound to CPU k, blocktime 1 ms) and found the VMs 2.04x faster. The same "
         "comparison on this machine, and beside it the one a planner can choose instead: "
         "tuned bare metal (instances unbound, runtimes that sleep when idle).")


def finding(c: dict[str, Any] | None) -> str:
    """``1.37x [1.10, 1.70]``; ``~ 1.03x [0.87, 1.24] (no measurable difference)`` when the
    interval includes 1; ``1.40x (one repeat: not a finding)`` without an interval."""
    if not c or c.get("ratio") is None:
        return "not measured"
    ci = c.get("ci95")
    if not ci:
        return f"{c['ratio']:.2f}x (one repeat: not a finding)"
    text = f"{c['ratio']:.2f}x [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"~ {text} (no measurable difference)" if ci[0] <= 1.0 <= ci[1] else text


def headline(study: dict[str, Any] | None, tuned: dict[str, Any] | None) -> str:
    """The one line: ``VM-like over the study's bare metal X [CI]; over tuned bare metal Y``."""
    return (f"VM-like over the study's bare metal {finding(study)}; over tuned bare metal "
            f"{finding(tuned)}")


def _bar(label: str, kind: str, p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p or p.get("throughput_ips") is None:
        return None
    return {"label": label, "kind": kind, "ips": p["throughput_ips"], "ci95": p.get("ci95_ips")}


def measured(run: Run) -> dict[str, Any] | None:
    """One run's comparison at N: its bars, the two ratios and the read-back, or None."""
    from scaler.suite_sides import bare as bare_placement
    from scaler.suite_sides import vm_side

    pts = suite_study.complete_points(run)
    bare = bare_placement()
    side = suite_study.side_of(pts, bare, vm_side)
    n = suite_study.common_n(pts, bare, side) if side else None
    if side is None or n is None:
        return None
    study_pair = suite_study.pair(pts, bare, side, suite_study.STYLE, n)
    tuned_pair = suite_study.pair(pts, bare, side, suite_study.TUNED, n)
    assert study_pair is not None  # common_n found both sides under the study's style
    a, b = study_pair
    bars = [_bar(f"{bare}, tuned", "tuned", tuned_pair[0] if tuned_pair else None),
            _bar(f"{bare}, as the study ran it", "study", a),
            _bar(f"{side}, tuned", "vm" if _virtual(side) else "pinned",
                 tuned_pair[1] if tuned_pair else None),
            _bar(f"{side}, {suite_study.STYLE} inside", "vm" if _virtual(side) else "pinned",
                 b)]
    mech = suite_study.mechanism(run, a)
    tuned_mech = suite_study.mechanism(run, tuned_pair[0]) if tuned_pair else None
    return {"run": run, "n": n, "side": side, "engine": a.get("engine"),
            "precision": a.get("precision"), "bars": [x for x in bars if x],
            "study": suite_study.compare(a, b),
            "tuned": suite_study.compare(*tuned_pair) if tuned_pair else None,
            "why": suite_study.why(n, mech, tuned_mech, suite_study.mechanism(run, b)),
            "mechanism": mech}


def _virtual(name: str) -> bool:
    from scaler.suite_sides import virtualized

    return virtualized(name)


def vm_panels(runs: list[Run], n: int) -> list[dict[str, Any]]:
    """Real VMs at N in other scaling runs, each beside that run's tuned bare metal."""
    from scaler.suite_sides import bare

    out = []
    for run in runs:
        pts = suite_study.complete_points(run)
        vms = [p for p in pts if _virtual(p["placement"]) and not p.get("emulated")
               and p["instances"] == n]
        base = next((p for p in pts if p["placement"] == bare() and p["instances"] == n
                     and suite_study.style_of(p) == suite_study.TUNED), None)
        if not vms:
            continue
        e = run.doc.get("effective", {})
        bars = [_bar(f"{bare()}, tuned", "tuned", base)]
        bars += [_bar(f"{p['placement']}, {suite_study.style_of(p)}", "vm", p) for p in vms]
        out.append({"title": f"{run.path.name}: {e.get('engine')} {e.get('precision')}, N={n}",
                    "bars": [x for x in bars if x]})
    return out


CAPTION_SIM = (" Last panel, dashed and open markers: simulated on {machine} (a model "
               "calibrated on this machine's runs of the styles, no interval); dotted: tuned.")


def section(inputs: Inputs, sim: dict[str, Any] | None = None) -> str:
    """The section; ``sim`` is ``study_sim.simulate``'s answer when ``--machine`` was given
    (its curves join the first figure, its line and split follow)."""
    from scaler.plot_study import study_figure
    from scaler.report import study_sim

    simulated = study_sim.panel(sim) if sim and "refused" not in sim else None
    scaling = [r for r in inputs.runs if r.scenario == "scaling" and not r.doc.get("simulated")]
    found = [m for r in scaling if suite_study.has_style(r) and (m := measured(r)) is not None]
    if not found:
        out = [note(esc(INTRO) + "<br>No run among the inputs measured bare metal as the study "
                    "ran it: <code>scaler suite</code> measures it (run "
                    f"<code>{suite_study.STUDY_RUN}</code>), as does <code>scaler scaling "
                    f"--placement shared,pinned --threading tuned,{suite_study.STYLE}</code>.")]
        if simulated:
            out.append(figure(study_figure([], simulated), "the study's headline, simulated",
                              CAPTION_SIM.format(machine=sim["machine"]).strip()))
        out.append(study_sim.html(sim))
        return "\n".join(out)
    out = [f"<p>{esc(INTRO)}</p>"]
    others = [r for r in scaling if all(r is not m["run"] for m in found)]
    for m in found:
        what = (f"{m['n']} instances, {m['engine']} {m['precision']} "
                f"({inputs.experiment(m['run'])})")
        out.append(f"<p><b>{esc(headline(m['study'], m['tuned']))}</b> "
                   f"<small>({esc(what)}; VM-like: {esc(m['side'])})</small></p>")
        conditions = [badge("noisy", "noisy") for c in (m["study"], m["tuned"])
                      if c and c.get("noisy")][:1]
        read = ("; ".join(m["why"]) if m["why"] else
                "the read-back shows neither stacked threads nor spinning runtimes")
        out.append(note("Read back from the workers: " + esc(read) + "." +
                        (" " + " ".join(conditions) if conditions else "")))
        out.append(note(esc(_advice(m))))
        panels = [p for p in ({"title": f"{m['run'].path.name}: {m['engine']} "
                                        f"{m['precision']}, N={m['n']}", "bars": m["bars"]},
                              *vm_panels(others, m["n"])) if p["bars"]]
        curves, simulated = simulated, None  # the simulated panel joins the first figure
        if not panels and curves is None:
            continue
        out.append(figure(study_figure(panels, curves), "the study's headline",
                          "Median images/s of all instances across repeats, 95% intervals as "
                          "error bars (hatched: one repeat, no interval). Red: bare metal as "
                          "the study ran it (--threading model-zoo); blue: tuned bare metal; "
                          "green: pinned partitions standing in for VMs; purple: VMs (real "
                          "ones only; another run's VMs in a panel of their own)."
                          + (CAPTION_SIM.format(machine=sim["machine"]) if curves else "")))
    out.append(study_sim.html(sim))
    return "\n".join(out)


def _advice(m: dict[str, Any]) -> str:
    """What a planner does with it."""
    study, tuned = m["study"], m["tuned"]
    gain = bool(study.get("ci95") and study["ci95"][0] > 1.0)
    if not gain:
        if study.get("ci95") and study["ci95"][1] < 1.0:
            return ("Here VM-like instances are measurably slower than the study's bare metal: "
                    "the study's direction is not reproduced on this machine.")
        return ("Here the interval of VM-like over the study's bare metal includes 1 (or there "
                "is none): no measurable advantage, and no finding either way; more repeats "
                "narrow it.")
    if tuned and tuned.get("ci95") and tuned["ci95"][0] <= 1.0 <= tuned["ci95"][1]:
        return ("Tuned bare metal (or pinning each instance to its own cores) recovers the "
                "VM-like advantage here: it came from how the study's bare metal bound and "
                "waited, not from virtualization. Plan on tuned or pinned layouts; scaler "
                "capacity leaves defaults and model-zoo bare-metal layouts out unless asked.")
    if tuned and tuned.get("ci95") and tuned["ci95"][0] > 1.0:
        rest = ("" if _virtual(m["side"]) else ": pinning each instance to its own cores "
                "gives the rest without VMs")
        return f"Tuned bare metal recovers part of the VM-like advantage here, not all of it{rest}."
    return ("Tuned bare metal was not measured measurably enough here to say how much of the "
            "advantage it recovers (see the interval above).")
