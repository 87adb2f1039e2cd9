"""What a report is made of: suite folders, run folders (or a mix), and a bench if one ran.

A suite folder holds run folders and ``suite.json`` (the claims); a folder of run folders
without ``suite.json`` (an older suite, or a folder of runs) is read as a suite without
claims. A run given twice (alone and inside a suite) is read once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.results import RUN_FILE, Run, load_run

SUITE_FILE = "suite.json"  # the same name as scaler.suite.SUITE_FILE (kept light to import)
BENCH_FILE = "bench.json"


@dataclass(frozen=True)
class Suite:
    path: Path
    doc: dict[str, Any] | None  # suite.json, None when the folder has none


@dataclass(frozen=True)
class Bench:
    path: Path
    doc: dict[str, Any]
    same_host: bool  # its host name is the runs' host name


@dataclass
class Inputs:
    runs: list[Run]
    suites: list[Suite]
    bench: Bench | None = None
    notes: list[str] = field(default_factory=list)
    experiments: dict[Path, str] = field(default_factory=dict)

    def experiment(self, run: Run) -> str:
        """The run's name in its suite (``throughput-int8``), else its scenario."""
        return (self.experiments.get(run.path.resolve())
                or run.doc.get("requested", {}).get("experiment") or run.scenario)

    def measured(self) -> list[Run]:
        return [r for r in self.runs if not r.doc.get("simulated")]

    def hosts(self) -> list[str]:
        return sorted({r.doc.get("host", {}).get("hostname", "?") for r in self.runs})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not a JSON object")
    return doc


def read_inputs(paths: list[str | Path], bench: str | Path | None = None) -> Inputs:
    """Suites and runs named on the command line, and the bench to show (``bench``, else
    ``bench/bench.json`` beside a suite folder or in ``results/``)."""
    if not paths:
        raise UsageError("give run or suite folders to report on")
    runs: dict[Path, Run] = {}
    suites: list[Suite] = []
    experiments: dict[Path, str] = {}
    for name in paths:
        path = Path(name)
        if path.is_file() and path.name in (RUN_FILE, SUITE_FILE):
            path = path.parent
        if not path.exists():
            raise UsageError(f"{path}: no such run or suite folder")
        if path.is_dir() and not (path / RUN_FILE).exists():
            children = sorted(p for p in path.iterdir() if (p / RUN_FILE).is_file())
            if not children:
                raise UsageError(f"{path}: neither a run folder nor a suite folder (no "
                                 f"{RUN_FILE} in it or in its folders)")
            doc = _read_json(path / SUITE_FILE) if (path / SUITE_FILE).is_file() else None
            suites.append(Suite(path, doc))
            by_path = {Path(v).name: k for k, v in (doc or {}).get("runs", {}).items()}
            for child in children:
                run = load_run(child)
                runs.setdefault(child.resolve(), run)
                if child.name in by_path:
                    experiments[child.resolve()] = by_path[child.name]
            continue
        run = load_run(path)
        runs.setdefault(run.path.resolve(), run)
    # in the order they were measured (a suite's experiments in their order)
    listed = sorted(runs.values(), key=lambda r: (str(r.doc.get("created", "")), r.path.name))
    inputs = Inputs(listed, suites, experiments=experiments)
    inputs.bench = find_bench(bench, suites, listed)
    return inputs


def find_bench(given: str | Path | None, suites: list[Suite], runs: list[Run]) -> Bench | None:
    """The bench to show: the one given, else the first ``bench/bench.json`` found beside a
    suite folder, beside a run folder or under ``results/``. A bench of another host is
    shown with that said."""
    if given is not None:
        path = Path(given)
        if path.is_dir():
            path = path / BENCH_FILE
        if not path.is_file():
            raise UsageError(f"{path}: no such bench file (make bench writes "
                             "results/bench/bench.json)")
        candidates = [path]
    else:
        places = [s.path.parent for s in suites] + [r.path.parent for r in runs]
        places += [r.path.parent.parent for r in runs] + [Path("results")]
        candidates = list(dict.fromkeys(p / "bench" / BENCH_FILE for p in places))
    hosts = {r.doc.get("host", {}).get("hostname") for r in runs}
    for path in candidates:
        if not path.is_file():
            continue
        try:
            doc = _read_json(path)
        except UsageError:
            if given is not None:
                raise
            continue
        if not str(doc.get("schema", "")).startswith("scaler-bench/"):
            if given is not None:
                raise UsageError(f"{path}: not a scaler bench file (no schema scaler-bench/N)")
            continue
        return Bench(path, doc, doc.get("host", {}).get("hostname") in hosts)
    return None
