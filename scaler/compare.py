"""``scaler compare A B``: every point measured in both runs, B over A, with its interval.

Points are matched by scenario, placement, threading style (a run from before ``--threading``
ran ``tuned``), instance count, batch and (multistream) layout;
the runs may differ in engine, precision or machine, and that is what is being compared. Each
comparison is Welch's t-test on the log of the repeat values (``scaler.significance``): the
ratio of B over A, its 95% interval, the p-value, and "~" when the interval includes 1. A point
measured while others used the machine is marked noisy on the side it was.
"""

from __future__ import annotations

from typing import Any

from scaler import significance
from scaler.errors import UsageError
from scaler.results import Run
from scaler.summaries import doc_points
from scaler.threadstyles import label

MATCH = ("placement", "instances", "batch", "layout")


def _key(scenario: str, point: dict[str, Any]) -> tuple[Any, ...]:
    return (scenario, point.get("threading") or "tuned", *(point.get(k) for k in MATCH))


def _points(runs: list[Run]) -> dict[tuple[Any, ...], tuple[Run, dict[str, Any]]]:
    out: dict[tuple[Any, ...], tuple[Run, dict[str, Any]]] = {}
    for run in runs:
        for p in doc_points(run.doc):
            if p.get("complete"):
                out.setdefault(_key(run.scenario, p), (run, p))
    return out


def compare_runs(a: list[Run], b: list[Run]) -> dict[str, Any]:
    """The comparisons of every point present in both; UsageError when there is none."""
    pa, pb = _points(a), _points(b)
    common = [k for k in pa if k in pb]
    if not common:
        raise UsageError("no point was measured in both: compare runs of the same scenario "
                         "with the same placements and instance counts")
    rows = []
    for key in common:
        (run_a, p), (run_b, q) = pa[key], pb[key]
        rows.append(_row(key[0], run_a, p, run_b, q, "throughput_ips", p["repeats_ips"],
                         q["repeats_ips"]))
        if key[0] == "latency":  # the latency itself too: a planner reads that ratio
            rows.append(_row(key[0], run_a, p, run_b, q, "latency_p50_ms",
                             [r["p50"] for r in p.get("latency_repeats", [])],
                             [r["p50"] for r in q.get("latency_repeats", [])]))
    return {"a": [str(r.path) for r in a], "b": [str(r.path) for r in b],
            "comparisons": rows,
            "only_in_a": len([k for k in pa if k not in pb]),
            "only_in_b": len([k for k in pb if k not in pa])}


def _row(scenario: str, run_a: Run, p: dict[str, Any], run_b: Run, q: dict[str, Any],
         metric: str, a_values: list[Any], b_values: list[Any]) -> dict[str, Any]:
    c = significance.compare(a_values, b_values)
    noisy = [side for side, point in (("A", p), ("B", q)) if point.get("noisy")]
    return {
        "scenario": scenario, "placement": q.get("placement"), "engine": q.get("engine"),
        "threading": q.get("threading") or "tuned", "label": label(q),
        "precision": q.get("precision"), "instances": q.get("instances"),
        "batch": q.get("batch"), "layout": q.get("layout"), "metric": metric,
        "a": {"engine": p.get("engine"), "precision": p.get("precision"),
              "isa_cap": p.get("isa_cap", "native"),
              "values": [v for v in a_values if v is not None], "run": str(run_a.path)},
        "b": {"engine": q.get("engine"), "precision": q.get("precision"),
              "isa_cap": q.get("isa_cap", "native"),
              "values": [v for v in b_values if v is not None], "run": str(run_b.path)},
        "ratio": c["ratio"], "ci95": c["ci95"], "p_value": c["p_value"],
        "significant": c["significant"], "test": c["test"], "note": c.get("note"),
        "noisy_in": noisy,
    }


def lines(result: dict[str, Any]) -> list[str]:
    out = [f"A: {', '.join(result['a'])}", f"B: {', '.join(result['b'])}",
           "B/A per point (Welch's t-test on log values across repeats; ~ = the 95% interval "
           "includes 1: no measurable difference)"]
    for r in result["comparisons"]:
        where = f"{r['scenario']} {r.get('label') or r['placement']} x{r['instances']}"
        if r["batch"] != 1:
            where += f" batch {r['batch']}"
        if r["metric"] != "throughput_ips":
            where += f" ({r['metric']})"
        cell = significance.verdict(r)
        if r["p_value"] is not None:
            cell += f"  p={r['p_value']:.3g}"
        if r["noisy_in"]:
            cell += f"  noisy in {' and '.join(r['noisy_in'])}"
        a, b = r["a"], r["b"]
        what = ("engine", "precision", "isa_cap")
        which = (f"  [{' '.join(str(a.get(k)) for k in what)} -> "
                 f"{' '.join(str(b.get(k)) for k in what)}]"
                 if tuple(a.get(k) for k in what) != tuple(b.get(k) for k in what) else "")
        out.append(f"  {where:<34} {cell}{which}")
    if result["only_in_a"] or result["only_in_b"]:
        out.append(f"  not compared: {result['only_in_a']} point(s) only in A, "
                   f"{result['only_in_b']} only in B")
    return out
