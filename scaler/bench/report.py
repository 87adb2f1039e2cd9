"""The bench's table and files: ``bench.json`` (every raw figure and how it was measured) and
``bench.md`` (the table), both written atomically so a reader never sees half a file.

Formatting returns lines; printing happens in ``__main__``. Targets are judged here, from the
raw figures alone, so a ``bench.json`` can be re-judged later without measuring again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scaler.bench.peak_rows import matmul_rows as _matmul_rows
from scaler.bench.peak_rows import peak_rows as _peak_rows
from scaler.bench.rows import Rows, cond, infers, section_of

TARGETS = {
    "harness_overhead_pct": 1.0,  # the timed loop costs under 1% of throughput
    "coordinator_us_per_query": 50.0,  # the null engine through the coordinator
    # the best layout of any engine, as a share of the measured peak of its precision
    "fp32_fraction_of_peak": 0.88,
    "bf16_fraction_of_peak": 0.85,
    "int8_fraction_of_peak": 0.85,
    "int8_over_fp32": 4.5,  # best int8 of any engine over the default fp32 engine's best
    "anchor_ratio": 0.97,  # scaler's images/s over the anchor tool's on the same model
}


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: section, figure, value, target, met, conditions.

    ``met`` is True, False, None (no target) or ``"unresolved"``: a figure whose target
    lies inside its noise or interval cannot be judged either way.
    """
    table = Rows(bool(results.get("quick")))
    for section in (_harness_rows, _coordinator_rows, _server_rows, _peak_rows, _matmul_rows,
                    _efficiency_rows, _goal_rows, _anchor_rows, _startup_rows, _help_rows,
                    _simulator_rows, _validation_rows, _speedprobe_rows):
        section(results, table)
    for name, message in results.get("errors", {}).items():
        table.add(name, "section failed", message)
    return table.out


def _speedprobe_rows(results: dict[str, Any], table: Rows) -> None:
    from scaler.bench.probe import rows as probe_rows

    probe_rows(results, table)


def _harness_rows(results: dict[str, Any], table: Rows) -> None:
    """Timed loop vs bare loop per engine; a harness-only engine gives the loop's cost."""
    loop_us = None
    for e in section_of(results, "harness").get("engines", []):
        model = f" {e['model']}" if infers(e["engine"]) else ""
        figure = (f"timed loop vs bare loop, {e['engine']} {e['precision']}{model} "
                  f"batch {e['batch']}")
        if "error" in e:
            table.add("harness", figure, f"failed: {e['error']}")
        elif not infers(e["engine"]):  # a ratio against doing nothing: only the cost means much
            table.add("harness", figure,
                      f"bare {e['bare_us_per_query']:.3f} µs/query, timed "
                      f"{e['timed_us_per_query']:.3f}: the loop adds "
                      f"{e['extra_us_per_query']:.3f} µs per query (median of {e['rounds']})",
                      cond=cond(e))
            loop_us = e["extra_us_per_query"]
        else:
            _overhead_row(e, figure, loop_us, table)


def _overhead_row(e: dict[str, Any], figure: str, loop_us: float | None, table: Rows) -> None:
    predicted = ("" if loop_us is None else f"; the null loop's cost predicts "
                 f"{loop_us / e['bare_us_per_query'] * 100:.4f}%")
    control = (f"; control bare/bare {e['control_min']:.4f}-{e['control_max']:.4f}, "
               f"noise {e['noise_pct']:.2f}%" if "noise_pct" in e else "")
    limit = TARGETS["harness_overhead_pct"]
    met: bool | str = e["overhead_pct"] < limit
    if not met and e["overhead_pct"] <= e.get("noise_pct", 0.0):
        met = "unresolved"  # no larger than two identical bare slices differ here
    table.add("harness", figure,
              f"{e['overhead_pct']:+.3f}% (median ratio {e['median_ratio']:.4f}, rounds "
              f"{e['ratio_min']:.4f}-{e['ratio_max']:.4f}{control}; bare "
              f"{e['bare_us_per_query'] / 1000:.3f} ms/query{predicted})",
              f"< {limit:g}%", met, cond(e))


def _coordinator_rows(results: dict[str, Any], table: Rows) -> None:
    h = section_of(results, "harness")
    c = h.get("coordinator_null")
    if c and "error" in c:
        table.add("harness", "null engine through run_group", f"failed: {c['error']}")
    elif c:
        bare = next((e for e in h.get("engines", [])
                     if not infers(e["engine"]) and "error" not in e), None)
        vs = f"; bare null loop {bare['bare_us_per_query']:.3f} µs" if bare else ""
        limit = TARGETS["coordinator_us_per_query"]
        table.add("harness", f"null engine through run_group (median of {c['repeats']})",
                  f"{c['us_per_query']:.3f} µs/query{vs}", f"< {limit:g} µs",
                  c["us_per_query"] < limit, cond(c))


def _server_rows(results: dict[str, Any], table: Rows) -> None:
    from scaler.bench.server import table_rows

    s = section_of(results, "server")
    if "error" in s:
        table.add("server", "open-loop harness", f"failed: {s['error']}")
    for figure, value, target, met in table_rows(s):
        table.add("server", figure, value, target, met, cond(s))


def _efficiency_rows(results: dict[str, Any], table: Rows) -> None:
    """Every layout of every engine x precision, then its best."""
    for prec in section_of(results, "efficiency").get("precisions", []):
        name = f"{prec['engine']} {prec['precision']}"
        if "skipped" in prec or "error" in prec:
            what = f"skipped: {prec['skipped']}" if "skipped" in prec else \
                f"failed: {prec['error']}"
            table.add("efficiency", name, what)
            continue
        for layout in prec["layouts"]:
            table.add("efficiency", f"{name} {prec['model']}: {layout['label']}",
                      _layout_value(layout), cond=cond(layout))
        best = prec.get("best")
        if best:
            table.add("efficiency", f"best {name}",
                      f"{best['throughput_ips']:.1f} images/s ({best['label']}){_shares(prec)}")


def _layout_value(layout: dict[str, Any]) -> str:
    ips = layout["throughput_ips"]
    value = f"{ips:.1f} images/s" if ips is not None else layout["status"]
    if layout.get("gflops"):
        value += f", {layout['gflops']:.0f} GFLOP/s"
    rates = [r for r in layout.get("per_instance_ips", []) if r is not None]
    if len(rates) > 1:  # few long queries: the common window is coarse, show both
        value += (f" (common window; instances {' + '.join(f'{r:.1f}' for r in rates)} = "
                  f"{sum(rates):.1f})")
    return value


def _shares(prec: dict[str, Any]) -> str:
    best, text = prec["best"], ""
    if prec.get("fraction_of_own_peak") is not None:
        text += (f" = {best['gflops']:.0f} G(FL)OP/s = {prec['fraction_of_own_peak']:.1%} of "
                 f"the {prec['precision']} peak x cores")
    if prec.get("fraction_of_fp32_peak") is not None and prec["precision"] != "fp32":
        text += f", {prec['fraction_of_fp32_peak']:.1%} of the fp32 peak"
    return text


def best_per_precision(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Precision -> the engine x precision entry whose best layout is fastest."""
    out: dict[str, dict[str, Any]] = {}
    for prec in section_of(results, "efficiency").get("precisions", []):
        best = prec.get("best")
        if not best or not infers(prec["engine"]):
            continue
        current = out.get(prec["precision"])
        if current is None or best["throughput_ips"] > current["best"]["throughput_ips"]:
            out[prec["precision"]] = prec
    return out


def over_peak_reason(entry: dict[str, Any]) -> str:
    """Why a best layout can beat its precision's measured peak: its kernels ran on a unit
    whose peak was not measured (AMX, read back), or it executes fewer operations than the
    model's nominal count."""
    units = ((entry.get("best") or {}).get("kernel_isa") or {}).get("units") or {}
    if "amx" in units:
        return (f"its kernels ran on AMX ({units['amx']} compute nodes, read back) and no AMX "
                "peak was measured")
    return ("the peak measured is not of the unit its kernels ran on, or it executes fewer "
            "operations than the model's nominal count")


def _goal_rows(results: dict[str, Any], table: Rows) -> None:
    """The goals on the best layout of any engine per precision, against its own peak, and
    int8 against the default fp32 engine (the study's)."""
    from scaler.engines.registry import default_engine

    if not section_of(results, "efficiency"):
        return
    best = best_per_precision(results)
    for precision in ("fp32", "bf16", "int8"):
        limit = TARGETS[f"{precision}_fraction_of_peak"]
        target = f">= {limit:.0%} of the {precision} peak"
        winner = best.get(precision)
        if winner is None:
            table.add("goals", f"best {precision} of any engine", "not measured (see above)",
                      f"({target})")
            continue
        fraction = winner.get("fraction_of_own_peak")
        value = (f"{winner['engine']}: {winner['best']['throughput_ips']:.1f} images/s "
                 f"({winner['best']['label']})")
        if fraction is None:
            table.add("goals", f"best {precision} of any engine",
                      value + f"; no measured {precision} peak to judge against", f"({target})")
            continue
        if fraction > 1.0:  # more than the measured peak: the peak is not the unit that ran
            table.add("goals", f"best {precision} of any engine", value + f" = {fraction:.1%}: "
                      "ABOVE the measured peak, an accounting error (" + over_peak_reason(
                          winner) + ")", target, False)
            continue
        table.add("goals", f"best {precision} of any engine", value + f" = {fraction:.1%}",
                  target, fraction >= limit)
    baseline_engine = default_engine("fp32")
    baseline = next((p for p in section_of(results, "efficiency").get("precisions", [])
                     if (p["engine"], p["precision"]) == (baseline_engine, "fp32")
                     and p.get("best")), None)
    if baseline and "int8" in best:
        ratio = best["int8"]["best"]["throughput_ips"] / baseline["best"]["throughput_ips"]
        limit = TARGETS["int8_over_fp32"]
        table.add("goals", f"best int8 ({best['int8']['engine']}) / {baseline_engine} fp32 "
                  "images/s (best layouts)", f"{ratio:.2f}x", f">= {limit:g}x", ratio >= limit)
    if "fp32" in best and "bf16" in best:
        ratio = best["bf16"]["best"]["throughput_ips"] / best["fp32"]["best"]["throughput_ips"]
        table.add("goals", "best bf16 / best fp32 images/s", f"{ratio:.2f}x")


# anchor sections: (section, label of the tool in the figure, key of the tool's images/s)
ANCHORS = (("anchor", "benchmark_app", "benchmark_app_images_per_s"),
           ("anchor_ort", "bare run loop", "tool_images_per_s"))


def _anchor_rows(results: dict[str, Any], table: Rows) -> None:
    for name, tool, key in ANCHORS:
        a = section_of(results, name)
        for run in a.get("runs", []):
            _anchor_row(table, a["engine"], tool, run, key)


def _anchor_row(table: Rows, engine: str, tool: str, run: dict[str, Any], key: str) -> None:
    figure = f"scaler / {tool} images/s, {engine} {run['precision']} batch {run['batch']}"
    if "skipped" in run or "error" in run:
        what = f"skipped: {run['skipped']}" if "skipped" in run else f"failed: {run['error']}"
        table.add("anchor", figure, what)
        return
    limit = TARGETS["anchor_ratio"]
    low, high = run["ratio_min"], run["ratio_max"]
    met: bool | str = True if low >= limit else False if high < limit else "unresolved"
    level = (f", {run['range_confidence']:.0%} interval" if run.get("range_confidence")
             else "")
    verdict = "; ~ (no measurable difference)" if low <= 1 <= high else ""
    table.add("anchor", figure,
              f"{run['median_ratio']:.3f} (rounds {low:.3f}-{high:.3f}{level}{verdict}); "
              f"scaler {run['scaler_images_per_s']:.1f}, {tool} {run[key]:.1f} images/s "
              f"(medians of {run['rounds']}, {run['seconds']:g} s each)",
              f">= {limit:g}", met, cond(run))


def _startup_rows(results: dict[str, Any], table: Rows) -> None:
    s = section_of(results, "startup")
    for key, run in s.items():
        if not isinstance(run, dict) or "seconds" not in run:
            continue
        detail = f"{run['seconds']:.2f} s"
        if run.get("cache"):
            conversion = (f", conversion {run['conversion_s']:.1f} s"
                          if run.get("conversion_s") else "")
            detail += f" (cache {run['cache']}{conversion})"
        model = f" ({run['model']})" if infers(run["engine"]) else ""
        table.add("startup", f"invocation -> first timed query, {key.replace('_', ' ')}{model}",
                  detail, cond=cond(s))
    if "cache_as_expected" in s:
        table.add("startup", "cold run converted, warm run hit the cache",
                  "yes" if s["cache_as_expected"] else "NO", "yes", s["cache_as_expected"])


def _help_rows(results: dict[str, Any], table: Rows) -> None:
    hp = section_of(results, "help")
    if "median_s" in hp:
        table.add("startup", f"scaler --help (median of {len(hp['all_s'])})",
                  f"{hp['median_s']:.3f} s", cond=cond(hp))
        heavy = ", ".join(hp["heavy_modules"]) or "none"
        table.add("startup", "scaler --help imports TensorFlow / heavy modules", heavy, "none",
                  not hp["heavy_modules"])


def _simulator_rows(results: dict[str, Any], table: Rows) -> None:
    sim = section_of(results, "simulator")
    if "skipped" in sim:
        table.add("simulator", "scaler.simulate.bench", f"skipped: {sim['skipped']}")
    for key, value in (sim.get("result") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            table.add("simulator", key,
                      f"{value:,.3g}" if isinstance(value, float) else f"{value:,}",
                      cond=cond(sim))


def engine_table_lines(results: dict[str, Any]) -> list[str]:
    """Engine x precision: the best layout's images/s and its share of the measured peak of
    its precision (and of the fp32 peak), as Markdown lines; empty without an efficiency
    section."""
    entries = section_of(results, "efficiency").get("precisions", [])
    if not entries:
        return []
    lines = ["| engine | precision | best layout | images/s | share of its precision's peak "
             "| share of fp32 peak |", "|---|---|---|---|---|---|"]
    for prec in sorted(entries, key=lambda p: (p["engine"], _order(p["precision"]))):
        best = prec.get("best")
        if not best:
            why = prec.get("skipped") or prec.get("error") or "no complete layout"
            lines.append(f"| {prec['engine']} | {prec['precision']} | not run: "
                         f"{why.replace('|', '/')} | | | |")
            continue
        own, fp32 = prec.get("fraction_of_own_peak"), prec.get("fraction_of_fp32_peak")
        shown = "" if own is None else f"{own:.1%}" + (" (above the peak: accounting error)"
                                                        if own > 1.0 else "")
        lines.append(f"| {prec['engine']} | {prec['precision']} | {best['label']} | "
                     f"{best['throughput_ips']:.1f} | {shown} | "
                     f"{'' if fp32 is None else f'{fp32:.1%}'} |")
    return lines


def _order(precision: str) -> int:
    from scaler.engines.base import PRECISIONS

    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def _validation_rows(results: dict[str, Any], table: Rows) -> None:
    """The simulator's held-out error on committed real runs (``bench/validation.py``):
    judged in ``--quick`` too, since the runs are the committed real ones either way."""
    from scaler.bench import validation

    table.out += validation.rows(section_of(results, "validation"))


def table_lines(results: dict[str, Any]) -> list[str]:
    """The table as Markdown lines (readable as plain text too)."""
    lines = ["| section | figure | value | target | met | load, others' CPU |",
             "|---|---|---|---|---|---|"]
    for r in rows(results):
        met = {True: "yes", False: "**NO**", None: "", "unresolved": "unresolved"}[r["met"]]
        cells = [r["section"], r["figure"], r["value"], r["target"], met, r["conditions"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    quick = " (--quick: smoke run, not figures to quote)" if results.get("quick") else ""
    head = [f"# scaler bench{quick}",
            "",
            f"{results.get('created', '')} on {results.get('host', {}).get('hostname', '?')}, "
            f"`{' '.join(results.get('command', []))}`. Raw figures and methods: `bench.json`.",
            ""]
    notes = [f"- {n}" for n in results.get("notes", [])]
    engines = engine_table_lines(results)
    if engines:
        engines = ["", "## Engines (best layout per engine and precision)", "", *engines]
    return "\n".join([*head, *table_lines(results), *engines, "", *notes, ""])


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, rename over ``path``."""
    from scaler.results import write_text_atomically

    write_text_atomically(path, text)


def save(out: Path, results: dict[str, Any]) -> None:
    write_atomically(out / "bench.json", json.dumps(results, indent=1, default=str) + "\n")
    write_atomically(out / "bench.md", markdown(results))
