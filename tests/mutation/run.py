"""Mutation testing of the measurement core: ``make mutation`` (not part of ``make test``).

Tool: mutmut 3 (``pip install .[mutation]``), chosen over cosmic-ray because it forks each
mutant from one warm process that has already imported numpy/scipy and collected the tests,
and runs only the tests that call the mutated function: the whole set runs in minutes on 2
cores, where cosmic-ray starts a fresh test command per mutant (about 1 s of imports each,
sequential with its local distributor). Its mutants are named per function, which is how
``targets.toml`` restricts a module to some of its functions. Its limits, stated in the
report: it does not mutate decorated functions (``@property``, ``@cached_property``) nor
module-level constants.

What it does: copies ``affinity/``, ``scaler/``, ``tests/``, ``pyproject.toml`` and the committed
reference runs (``results/reference/``) into
``build/mutation/`` (never mutating the work tree), adds a ``[tool.mutmut]`` section built
from ``targets.toml`` and a conftest making Hypothesis deterministic (derandomized, no
example database, so a score does not depend on earlier runs), runs ``mutmut run`` on the
selected mutants, then reads mutmut's per-file results and writes the score per module and
every surviving mutant, with its diff and, where ``survivors.toml`` gives one, the reason it
is equivalent or accepted, to ``results/mutation/report.md`` (a run of all modules) and the
terminal. Exit status 1 when a module scores below ``min_score``.

Score = killed / (mutants - equivalent); a timeout or a crash of the test process counts
as killed (the tests noticed), "no tests" (no selected test calls the function) as survived.

    python -m tests.mutation.run                  # all modules of targets.toml
    python -m tests.mutation.run affinity/plan.py # some modules (no report file)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRATCH = ROOT / "build" / "mutation"
REPORT = ROOT / "results" / "mutation" / "report.md"
COPIED = ("affinity", "scaler", "tests", "pyproject.toml",
          "results/reference")  # committed runs some tests load (a schema-1 run)
SEP = "ǁ"  # mutmut's separator in method names: xǁClassǁmethod

CONFTEST = '''"""Written by tests/mutation/run.py: the same Hypothesis examples for every mutant."""
from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None)
settings.load_profile("mutation")
'''

# mutmut's exit codes of a mutant's test run (mutmut/stats.py status_by_exit_code)
KILLED = {1, 3}
TIMEOUT = {-24, 24, 152, 255, 36}
# -6: SIGABRT, a C++ runtime (onnxruntime) aborting the test process on a bad argument
CRASHED = {-11, -9, -6}
NO_TESTS = {5, 33}
SURVIVED = {0}


@dataclass(frozen=True)
class Target:
    path: str  # "affinity/plan.py"
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def globs(self) -> list[str]:
        """mutmut mutant-name patterns selecting this target's mutants."""
        if not self.functions:
            return [f"{self.module}.*"]
        out = []
        for name in self.functions:
            cls, _, func = name.rpartition(".")
            mangled = f"x{SEP}{cls}{SEP}{func}" if cls else f"x_{func}"
            out.append(f"{self.module}.{mangled}__mutmut_*")
        return out

    def selects(self, mutant: str) -> bool:
        return any(fnmatch.fnmatchcase(mutant, g) for g in self.globs())


@dataclass
class Survivor:
    name: str
    status: str
    removed: str
    added: str
    diff: str
    kind: str = ""  # "equivalent", "accepted" or "" (needs a test)
    reason: str = ""


@dataclass
class Score:
    target: Target
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    equivalent: int = 0
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        denominator = self.mutants - self.equivalent
        return 100.0 * (self.killed + self.timeout) / denominator if denominator else None


def load_targets(path: Path = HERE / "targets.toml") -> tuple[list[Target], float, list[str]]:
    doc = tomllib.loads(path.read_text())
    targets = [Target(m["path"], tuple(m["tests"]), tuple(m.get("functions", ())))
               for m in doc["module"]]
    return targets, float(doc.get("min_score", 85.0)), list(doc.get("deselect", []))


def load_survivor_notes(path: Path = HERE / "survivors.toml") -> list[dict]:
    """Reviewed survivors: function, the removed and added line(s), kind and reason."""
    if not path.exists():
        return []
    notes = tomllib.loads(path.read_text()).get("survivor", [])
    for note in notes:
        if note.get("kind") not in ("equivalent", "accepted"):
            raise SystemExit(f"{path}: kind must be equivalent or accepted: {note}")
    return notes


def function_of(mutant: str) -> str:
    """``affinity.plan.x__straddle__mutmut_3`` -> ``affinity.plan._straddle``;
    ``scaler.results.xǁRunǁsamples__mutmut_1`` -> ``scaler.results.Run.samples``."""
    mangled = mutant.partition("__mutmut_")[0]
    module, _, name = mangled.rpartition(".")
    if name.startswith(f"x{SEP}"):
        _, cls, func = name.split(SEP)
        return f"{module}.{cls}.{func}"
    return f"{module}.{name[2:]}"


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and added lines of a unified diff, stripped and joined by " / "."""
    lines = diff.splitlines()
    removed = [ln[1:].strip() for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def classify(survivor: Survivor, function: str, notes: list[dict]) -> dict | None:
    """The note of ``survivors.toml`` for this survivor: same function, same removed line(s)
    and added line(s) (``added`` may list several mutants of one line with one reason)."""
    for note in notes:
        added = note["added"] if isinstance(note["added"], list) else [note["added"]]
        if (note["function"] == function and note["removed"] == survivor.removed
                and survivor.added in added):
            survivor.kind, survivor.reason = note["kind"], note["reason"]
            return note
    return None


def prepare(targets: list[Target], deselect: list[str]) -> None:
    """A fresh copy of the sources and tests with mutmut's configuration."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, SCRATCH / name, ignore=ignore)
        else:
            shutil.copy2(source, SCRATCH / name)
    tests = sorted({t for target in targets for t in target.tests})
    extra = [arg for test in deselect for arg in ("--deselect", test)]
    mutated = sorted({target.path for target in targets})

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    with open(SCRATCH / "pyproject.toml", "a") as f:
        f.write(
            "\n\n# written by tests/mutation/run.py\n[tool.mutmut]\n"
            'source_paths = ["affinity", "scaler"]\n'
            f"only_mutate = {toml_list(mutated)}\n"
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
            f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', *extra])}\n"
            'also_copy = ["conftest.py", "results/reference"]\n'
            "use_git_change_detection = false\n"
        )
    (SCRATCH / "conftest.py").write_text(CONFTEST)
    # the sysfs trees of the affinity tests, written once instead of once per mutant
    sys.path.insert(0, str(ROOT))
    from tests.affinity.conftest import TREES_ENV
    from tests.affinity.fixtures import make_sysfs

    os.environ[TREES_ENV] = str(SCRATCH / "sysfs")
    make_sysfs.write_all_once(os.environ[TREES_ENV])


STATUS = re.compile(r"(\d+)/(\d+)\s+🎉 (\d+) 🫥 (\d+)\s+⏰ (\d+)\s+🤔 (\d+)\s+🙁 (\d+)")


def _ignore_hangup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def run_mutmut(targets: list[Target], jobs: int, log: Path) -> None:
    """``mutmut run`` on the targets' mutants; progress every 30 s, everything in ``log``."""
    mutmut = Path(sys.executable).parent / "mutmut"
    if not mutmut.exists():
        raise SystemExit("mutmut is not installed: pip install -e '.[mutation]'")
    globs = [g for target in targets for g in target.globs()]
    cmd = [str(mutmut), "run", "--max-children", str(jobs), *globs]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    last_print, last_status = 0.0, ""
    with open(log, "wb") as out:
        # mutmut ignores SIGHUP (its forked test processes inherit that): a mutant of
        # ``os.kill(pid, 0)`` is ``os.kill(pid, 1)``, and test_runfolders.py probes its parent
        # (``os.getppid()``, under mutmut the mutmut process) as a live pid
        proc = subprocess.Popen(cmd, cwd=SCRATCH, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, preexec_fn=_ignore_hangup)
        assert proc.stdout is not None
        buffer = b""
        try:
            while chunk := proc.stdout.read1(65536):
                out.write(chunk)
                buffer += chunk
                *pieces, buffer = re.split(rb"[\r\n]", buffer)
                for piece in pieces:
                    text = piece.decode("utf-8", "replace").strip()
                    match = STATUS.search(text)
                    if match:
                        last_status = text[match.start():]
                    elif text.startswith(("done", "Running mutation", "FAILED", "Stopping",
                                          "failed", "Traceback")) or "mutations/second" in text:
                        print(f"  mutmut: {text}", flush=True)
                if last_status and time.monotonic() - last_print > 30:
                    print(f"  mutmut: {last_status}", flush=True)
                    last_print = time.monotonic()
        finally:
            code = proc.wait()
    if code != 0:
        tail = log.read_bytes()[-3000:].decode("utf-8", "replace")
        raise SystemExit(f"mutmut run failed with exit code {code}; end of {log}:\n{tail}")
    if last_status:
        print(f"  mutmut: {last_status}")


def collect(targets: list[Target], notes: list[dict]) -> tuple[list[Score], list]:
    """Scores per target from mutmut's result files, survivors with their diffs."""
    os.chdir(SCRATCH)  # mutmut's helpers read its files relative to the project
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    used: list = []
    scores = []
    for target in targets:
        meta = SCRATCH / "mutants" / f"{target.path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        score = Score(target)
        for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
            if not target.selects(name):
                continue
            score.mutants += 1
            if code in KILLED or code in CRASHED:
                score.killed += 1
                continue
            if code in TIMEOUT:
                score.timeout += 1
                continue
            status = ("survived" if code in SURVIVED else "no tests" if code in NO_TESTS
                      else "not run" if code is None else f"exit code {code}")
            diff = get_diff_for_mutant(name, path=target.path)
            removed, added = changed_lines(diff)
            survivor = Survivor(name, status, removed, added, diff)
            note = classify(survivor, function_of(name), notes)
            if note is not None:
                used.append(note)
            if survivor.kind == "equivalent":
                score.equivalent += 1
            score.survivors.append(survivor)
        scores.append(score)
    os.chdir(ROOT)
    return scores, used


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else 0


def table(scores: list[Score]) -> list[str]:
    rows = ["| module | mutants | killed | equivalent | survived | score |",
            "|---|---:|---:|---:|---:|---:|"]
    for s in scores:
        name = s.target.path + (f" ({', '.join(s.target.functions)})" if s.target.functions
                                else "")
        live = len(s.survivors) - s.equivalent
        shown = "n/a" if s.score is None else f"{s.score:.1f}%"
        killed = f"{s.killed + s.timeout}" + (f" ({s.timeout} by timeout)" if s.timeout else "")
        rows.append(f"| {name} | {s.mutants} | {killed} | {s.equivalent} | {live} | {shown} |")
    total = Score(Target("all", ()))
    for s in scores:
        total.mutants += s.mutants
        total.killed += s.killed
        total.timeout += s.timeout
        total.equivalent += s.equivalent
        total.survivors += s.survivors
    live = len(total.survivors) - total.equivalent
    shown = "n/a" if total.score is None else f"{total.score:.1f}%"
    rows.append(f"| **all** | {total.mutants} | {total.killed + total.timeout} | "
                f"{total.equivalent} | {live} | {shown} |")
    return rows


def survivor_lines(scores: list[Score]) -> list[str]:
    out: list[str] = []
    for s in scores:
        if not s.survivors:
            continue
        out += ["", f"### {s.target.path}", ""]
        for v in s.survivors:
            label = {"equivalent": "equivalent", "accepted": "accepted"}.get(v.kind,
                                                                              "NEEDS A TEST")
            why = f": {v.reason}" if v.reason else ""
            out.append(f"- `{v.name}` ({v.status}) **{label}**{why}")
            out.append(f"  - `- {v.removed}`" if v.removed else "  - (nothing removed)")
            out.append(f"  - `+ {v.added}`" if v.added else "  - (nothing added)")
    return out


def unmutated(target: Target) -> list[str]:
    """What mutmut leaves alone in a target: decorated functions and module constants."""
    import ast

    tree = ast.parse((ROOT / target.path).read_text())
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            names = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [n.id for n in names if isinstance(n, ast.Name) and n.id != "__all__"]
        scopes = [(node.name + ".", node.body)] if isinstance(node, ast.ClassDef) else [
            ("", [node])]
        for prefix, body in scopes:
            for item in body:
                if (isinstance(item, ast.FunctionDef) and item.decorator_list and not (
                        len(item.decorator_list) == 1
                        and isinstance(item.decorator_list[0], ast.Name)
                        and item.decorator_list[0].id in ("staticmethod", "classmethod"))):
                    found.append(f"{prefix}{item.name}()")
    if target.functions:
        found = [f for f in found if f.removesuffix("()") in target.functions]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths from targets.toml (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--no-run", action="store_true",
                        help="report from the last run's results in build/mutation")
    args = parser.parse_args(argv)
    targets, min_score, deselect = load_targets()
    if args.modules:
        unknown = set(args.modules) - {t.path for t in targets}
        if unknown:
            parser.error(f"not in targets.toml: {', '.join(sorted(unknown))}")
        targets = [t for t in targets if t.path in args.modules]
    notes = load_survivor_notes()
    started = time.monotonic()
    log = SCRATCH / "mutmut.log"
    if not args.no_run:
        print(f"mutation testing {len(targets)} module(s) with mutmut in {SCRATCH} "
              f"({args.jobs} jobs); log: {log}", flush=True)
        prepare(targets, deselect)
        run_mutmut(targets, args.jobs, log)
    elapsed = time.monotonic() - started
    last_run = SCRATCH / "last-run.json"  # so that --no-run reports the run's own duration
    if args.no_run:
        elapsed = json.loads(last_run.read_text())["seconds"] if last_run.exists() else None
    else:
        last_run.write_text(json.dumps({"seconds": elapsed, "jobs": args.jobs}))
    scores, used = collect(targets, notes)
    stale = [n for n in notes if n not in used
             and any(n["function"].startswith(t.module + ".") for t in targets)]
    from importlib import metadata

    lines = table(scores)
    print("\n".join(["", *lines]))
    survivors = survivor_lines(scores)
    print("\n".join(["", "Surviving mutants:", *survivors] if survivors else ["", "No survivor."]))
    for note in stale:
        print(f"warning: survivors.toml entry matches no survivor (fixed or changed?): "
              f"{note['function']}: - {note['removed']} / + {note['added']}")
    unreviewed = [(function_of(v.name), v) for s in scores for v in s.survivors if not v.kind]
    if unreviewed:  # stubs to review and copy into survivors.toml
        stubs = SCRATCH / "unreviewed.toml"
        stubs.write_text("".join(
            f"\n[[survivor]]  # {v.name} ({v.status})\nfunction = {json.dumps(function)}\n"
            f"removed = {json.dumps(v.removed, ensure_ascii=False)}\n"
            f"added = {json.dumps(v.added, ensure_ascii=False)}\n"
            'kind = ""\nreason = ""\n' for function, v in unreviewed))
        print(f"{len(unreviewed)} survivor(s) not reviewed: stubs in {stubs.relative_to(ROOT)}")
    failing = [s for s in scores if s.score is not None and s.score < min_score]
    minutes = "(duration unknown)" if elapsed is None else f"{elapsed / 60:.1f} min"
    print(f"\nmutation run took {minutes} with {args.jobs} jobs")
    if not args.modules:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text("\n".join([
            "# Mutation report",
            "",
            f"`make mutation` with mutmut {metadata.version('mutmut')}: {minutes}, "
            f"{args.jobs} jobs, {os.cpu_count()} CPUs. Modules and tests: "
            "`tests/mutation/targets.toml`; reviewed survivors: `tests/mutation/survivors.toml`.",
            "Score = killed / (mutants - equivalent); killed includes timeouts. mutmut mutates "
            "the bodies of plain functions and methods only: not `@property`/`@cached_property` "
            "bodies, class attributes or module-level constants (listed below), which the tests "
            "pin down directly. `affinity/__init__.py` and `affinity/errors.py` hold no "
            "function.",
            "",
            *lines,
            "",
            "Not mutated by mutmut (tested directly where they hold logic):",
            "",
            *[f"- {t.path}: {', '.join(f'`{n}`' for n in unmutated(t))}" for t in targets
              if unmutated(t)],
            "",
            "## Surviving mutants",
            "",
            "equivalent: no input can tell the mutant from the code; accepted: a difference no "
            "test should pin down (the reason says why); NEEDS A TEST: not reviewed yet.",
            *survivors,
            "",
        ]))
        print(f"report: {args.report.relative_to(ROOT)}")
    if failing:
        print("below the minimum score of "
              f"{min_score:g}%: {', '.join(s.target.path for s in failing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
