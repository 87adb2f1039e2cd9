"""What ``scaler fit`` fits and how it reads: the points it leaves out, the parameters the
data cannot pin down, and numbers a person can read.

- Points of the null engine (no inference), emulated points (VMs under TCG, ~100x slow)
  and oversubscribed points (more instances or threads than CPUs: time-slicing, not the
  contention the USL describes) are left out unless asked, saying which.
- A quantity that does not exist is printed as ``none`` with the reason: the Amdahl ceiling
  λ/σ when σ ≈ 0, the peak N* when κ ≈ 0. Where σ's interval reaches 0 the ceiling has no
  upper end, and only its lower end is printed.
- A parameter is *unconstrained* when its 95% interval spans its whole range: σ from 0 to
  1; λ down to 0; κ from 0 to a cost that alone would halve the throughput at the largest
  measured N (κ has no upper bound, so that is as far as "anything goes" reaches in the
  measured range); any interval that is not finite. The fit then says so.
- Numbers are printed with a few significant digits, never in e-notation (``5 × 10^26`` past
  a billion); values under 1e-9 (the solver's floor, e.g. σ = 1.8e-19) print as 0.
"""

from __future__ import annotations

import math
from typing import Any

from scaler.results import Run

INCLUDE = ("oversubscribed", "emulated", "null")
TINY = 1e-9


def readable(v: float | None, unit: str = "") -> str:
    """A number as a person reads it: ``none``, ``0``, ``0.000121``, ``6.203``, ``4,154,914``,
    ``5 × 10^26``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    if math.isinf(v):
        return "unbounded"
    tail = f" {unit}" if unit else ""
    a = abs(v)
    if a < TINY:
        return "0" + tail
    if a >= 1e9:  # digits past the fourth would be float noise
        exp = math.floor(math.log10(a))
        return f"{v / 10**exp:.3g} × 10^{exp}{tail}"
    if a >= 1000:
        return f"{v:,.0f}{tail}"
    if a >= 1:
        text = f"{v:.4g}"
        return (text if "e" not in text else f"{v:.1f}") + tail
    decimals = min(-math.floor(math.log10(a)) + 2, 12)
    return f"{v:.{decimals}f}".rstrip("0").rstrip(".") + tail


def select(runs: list[Run], include: set[str]) -> tuple[list[Run], list[str]]:
    """The runs with the points ``fit`` leaves out removed, and a note per thing left out."""
    from scaler.runsets import infers

    kept, notes = [], []
    for run in runs:
        eff = run.doc.get("effective", {})
        if not infers(str(eff.get("engine"))) and "null" not in include:
            notes.append(f"left out {run.path}: {eff.get('engine')} engine (no inference: it "
                         "measures the harness itself); --include null fits it")
            continue
        if run.doc.get("emulated") and "emulated" not in include:
            notes.append(f"left out {run.path}: emulated (VMs under TCG, about 100x slow); "
                         "--include emulated fits it")
            continue
        groups, dropped = [], {"oversubscribed": [], "emulated": [], "null": []}
        for g in run.doc.get("groups", []):
            why = _drop(g, include)
            if why:
                dropped[why].append(f"{g.get('placement')} N={g.get('instances')}")
            else:
                groups.append(g)
        for why, where in dropped.items():
            if where:
                unique = list(dict.fromkeys(where))
                notes.append(f"left out {len(unique)} {_WHY[why]} point(s) of {run.path} "
                             f"({', '.join(unique)}); --include {why} fits them")
        doc = {**run.doc, "groups": groups}
        doc.pop("points", None)
        kept.append(Run(run.path, doc))
    return kept, notes


_WHY = {"oversubscribed": "oversubscribed", "emulated": "emulated",
        "null": "null-engine"}


def _drop(group: dict[str, Any], include: set[str]) -> str | None:
    from scaler.runsets import infers

    if not infers(str(group.get("engine"))) and "null" not in include:
        return "null"
    if group.get("emulated") and "emulated" not in include:
        return "emulated"
    if group.get("oversubscribed") and "oversubscribed" not in include:
        return "oversubscribed"
    return None


def parse_include(items: list[str]) -> set[str]:
    from scaler.errors import UsageError

    out = set()
    for item in items:
        for name in (x.strip() for x in item.split(",")):
            if not name:
                continue
            if name not in INCLUDE:
                raise UsageError(f"unknown --include {name!r}: choose from "
                                 f"{', '.join(INCLUDE)}")
            out.add(name)
    return out


def unconstrained(f: dict[str, Any]) -> list[str]:
    """A warning per parameter whose interval spans its whole range (see the module)."""
    out = []
    lo_n, hi_n = f["instances_range"]
    for name in ("lambda", "sigma", "kappa"):
        lo, hi = f[f"{name}_ci"]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            out.append(f"{name} is unconstrained: its 95% interval is not finite")
            continue
        if name == "sigma" and lo <= TINY and hi >= 1 - TINY:
            out.append("sigma is unconstrained: its 95% interval spans its whole range [0, 1]")
        elif name == "lambda" and lo <= TINY:
            out.append(f"lambda is unconstrained: its 95% interval reaches 0 "
                       f"([0, {readable(hi)}] images/s)")
        elif name == "kappa" and lo <= TINY and hi * hi_n * (hi_n - 1) >= 1 + f["sigma"] * (
                hi_n - 1) and hi_n > 1:
            out.append(f"kappa is unconstrained: its 95% interval [0, {readable(hi)}] runs from "
                       f"no coherency cost to one that alone halves the throughput at N={hi_n}")
    return out


def lines(fits: list[dict[str, Any]], refused: list[dict[str, Any]]) -> list[str]:
    """The fits as text (warnings go to stderr separately: ``unconstrained``)."""
    out = []
    for f in fits:
        sim = " [simulated]" if f["simulated"] else ""
        lo, hi = f["instances_range"]
        out += [f"{f['placement']} ({f['engine']} {f['precision']} {f['model']}){sim}: "
                f"{f['points']} points, N {lo}-{hi}",
                f"  lambda {_ci(f, 'lambda')} images/s   sigma {_ci(f, 'sigma')}   "
                f"kappa {_ci(f, 'kappa')}   R² {f['r2']:.4f}   (95% intervals)",
                f"  peak: {_peak(f)}",
                f"  Amdahl ceiling lambda/sigma: {_ceiling(f)}"]
        loose = {w.split()[0] for w in unconstrained(f)}
        for n in f["notes"]:
            if "sigma" in loose and n.startswith("σ ≈ 0"):
                n = "σ ≈ 0 at the fit, but σ is unconstrained: contention is not measured"
            elif loose & {"sigma", "lambda"} and "Amdahl ceiling" in n:
                n = n.split(";")[0] + " at the fitted values (see the ceiling above)"
            out.append(f"  note: {n}")
    for r in refused:
        sim = " [simulated]" if r.get("simulated") else ""
        out.append(f"not fitted: {r['placement']} ({r['engine']} {r['precision']} "
                   f"{r['model']}){sim}: {r['reason']}")
    return out


def _ci(f: dict[str, Any], name: str) -> str:
    lo, hi = f[f"{name}_ci"]
    return f"{readable(f[name])} [{readable(lo)}, {readable(hi)}]"


def _peak(f: dict[str, Any]) -> str:
    loose = any(w.startswith("kappa is unconstrained") for w in unconstrained(f))
    if f["peak_instances"] is None:
        if f["kappa_negligible"] and loose:
            return ("none at the fitted kappa ≈ 0, but kappa is unconstrained: a peak within "
                    "the measured range is not ruled out")
        if f["kappa_negligible"]:
            return "none (kappa ≈ 0: throughput does not fall within reach)"
        return "none (sigma = 1: throughput is highest at one instance)"
    text = (f"{readable(f['peak_throughput_ips'])} images/s at N* = "
            f"{readable(f['peak_instances'])}")
    if f["kappa_ci"][0] <= TINY:
        text += " (kappa's interval reaches 0: there may be no peak)"
    return text


def _ceiling(f: dict[str, Any]) -> str:
    if f["amdahl_ceiling_ips"] is None or f["sigma"] <= TINY:
        return "none (sigma ≈ 0: no contention measured, nothing caps the throughput)"
    lam_lo, sig_hi = f["lambda_ci"][0], f["sigma_ci"][1]
    if f["sigma_ci"][0] <= TINY:
        point = readable(f["amdahl_ceiling_ips"])
        if lam_lo <= TINY or sig_hi <= TINY:
            return (f"unknown: the intervals of lambda and sigma reach 0 (point value {point} "
                    "images/s)")
        return (f"at least {readable(lam_lo / sig_hi)} images/s, no upper end (sigma's "
                f"interval reaches 0; point value {point})")
    return f"{readable(f['amdahl_ceiling_ips'])} images/s"
