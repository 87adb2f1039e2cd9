"""The provenance section: how each run was taken and how to take it again: status, when,
where, the run rules, software versions, the warnings it carries, and the exact command
(``run.json`` ``command``; a suite's runs record the suite command that made them all)."""

from __future__ import annotations

import shlex

from scaler.report.fmt import status
from scaler.report.html import badge, esc, note, table
from scaler.report.inputs import Inputs
from scaler.results import Run
from scaler.summaries import doc_points

TITLE = "Software, commands and provenance"


def command(r: Run) -> str:
    """The recorded command as a shell line (``python -m scaler`` records its program as
    ``__main__.py``: shown as the command that runs it)."""
    cmd = r.doc.get("command")
    if not cmd:
        return ""
    if not isinstance(cmd, list):
        return str(cmd)
    words = [str(c) for c in cmd]
    if words[0] == "__main__.py":
        words[:1] = ["python", "-m", "scaler"]
    return shlex.join(words)


def _rules(r: Run) -> str:
    rules = r.doc.get("effective", {}).get("rules") or {}
    keep = ("min_duration_s", "min_queries", "warmup_s")
    parts = [f"{k} {rules[k]:g}" for k in keep if isinstance(rules.get(k), int | float)]
    repeat = r.doc.get("requested", {}).get("repeat")
    if repeat:
        parts.append(f"repeat {repeat}")
    return ", ".join(parts) or "-"


def _versions(runs: list[Run]) -> str:
    packages: dict[str, dict[str, str]] = {}
    for r in runs:
        for pkg, version in (r.doc.get("host", {}).get("versions") or {}).items():
            packages.setdefault(pkg, {})[r.path.name] = str(version)
    rows = []
    for pkg, by_run in packages.items():
        distinct = sorted(set(by_run.values()))
        cell = esc(", ".join(distinct))
        if len(distinct) > 1:
            cell += " " + badge("partial", "differs between runs", "; ".join(
                f"{k}: {v}" for k, v in by_run.items()))
        rows.append([esc(pkg), cell, str(len(by_run))])
    return table(["package", "version", "runs recording it"], rows, numeric=(2,))


def _warnings(r: Run) -> list[str]:
    found: dict[str, list[str]] = {}
    for p in doc_points(r.doc):
        for w in p.get("warnings", []):
            found.setdefault(w, []).append(f"{p.get('layout') or p.get('placement')} "
                                           f"x{p.get('instances')} b{p.get('batch')}")
    return [f"{esc(w)} <span class=\"note\">({esc(', '.join(where[:6]))}"
            f"{', ...' if len(where) > 6 else ''})</span>" for w, where in found.items()]


def _runs_table(inputs: Inputs) -> str:
    rows = []
    for r in inputs.runs:
        eff = r.doc.get("effective", {})
        rows.append([esc(inputs.experiment(r)), esc(r.scenario), status(r.doc),
                     esc(r.doc.get("created", "-")), esc(r.doc.get("host", {}).get("hostname")),
                     esc(f"{eff.get('engine')} {eff.get('precision')} {eff.get('model')}"),
                     esc(_rules(r)), f"<code>{esc(r.path)}</code>"])
    return table(["run", "scenario", "status", "created", "host", "engine", "rules",
                  "folder"], rows)


def _commands(inputs: Inputs) -> str:
    """Each distinct recorded command once, with the runs it made."""
    by: dict[str, list[str]] = {}
    for r in inputs.runs:
        by.setdefault(command(r), []).append(inputs.experiment(r))
    out = []
    for cmd, names in by.items():
        made = "made: " + ", ".join(names)
        out.append(note(esc(made)) + ("<pre>" + esc(cmd) + "</pre>" if cmd
                                      else note("no command recorded")))
    return "\n".join(out)


def section(inputs: Inputs) -> str:
    out = ["<h3>Software versions</h3>", _versions(inputs.runs),
           "<h3>Runs</h3>", _runs_table(inputs),
           "<h3>Commands that reproduce them</h3>",
           note("As recorded in each run's <code>run.json</code>: the runs of a suite all "
                "record the <code>scaler suite</code> command that made them."),
           _commands(inputs)]
    warned = [(r, _warnings(r)) for r in inputs.runs]
    if any(w for _, w in warned):
        out.append("<h3>Warnings the runs carry</h3>")
        for r, warnings in warned:
            if warnings:
                out.append(f"<p><b>{esc(inputs.experiment(r))}</b></p><ul>"
                           + "".join(f"<li>{w}</li>" for w in warnings) + "</ul>")
    return "\n".join(out)
