"""The README's commands that read results, run exactly as written (issue 17).

A fixture measures, with short windows, a ``results/`` folder holding what a user's would
after a while: scaling runs of two engines (a real one and the null engine), a latency run,
two scaling runs named as the README's ``compare`` example names them, a suite, and a run of
two thread styles where the simulator's styles example reads it. Each README line that reads
results (show, plot, fit, simulate, capacity, compare, report, export) then runs through the
shell, globs and all, in README order, two at a time (``capacity`` reads what ``simulate``
wrote: it waits for the commands before it). A command either works or refuses in one line
naming what to do; none prints a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suites import NULL_ENV, null_suite

# the tests that measure are marked serial one by one (tests/conftest.py); the README's
# commands only read the measured folder and run beside the serial group

ROOT = Path(__file__).resolve().parents[1]
SCALER = Path(sys.executable).parent / "scaler"
READS = {"show", "plot", "fit", "simulate", "capacity", "compare", "report", "export"}
SHORT = ["--min-duration", "0.3", "--warmup", "0", "--min-queries", "10"]
TIMEOUT = 300


def readme_commands() -> list[str]:
    """Lines of the README's code blocks that run a results-reading scaler command, without
    their comments (a line ending in a backslash continues on the next)."""
    out, in_block, lines = [], False, []
    for line in (ROOT / "README.md").read_text().splitlines():
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
    for line in lines:
        if line.startswith("```"):
            in_block = not in_block
            continue
        match = re.match(r"\s*\.venv/bin/scaler (\S+)(.*)", line) if in_block else None
        if match and match.group(1) in READS:
            out.append(line.split("  #")[0].strip())
    return out


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # the null engine's queries last 0.5 ms (tests/suites.py), as in the session's suite
    return subprocess.run([str(SCALER), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, **NULL_ENV})


def measured(artifacts) -> Path:
    """The README's results folder, measured once per session (tests/artifacts.py) by
    ``test_the_readme_results_are_measured`` in the serial group, first: the tests that only
    read it run beside the group, each in a copy."""
    return Path(artifacts.get("readme_results", lambda folder: str(_measure(folder, artifacts))))


def _measure(cwd: Path, artifacts) -> Path:
    tiny = ["--engine", "tflite", "--model", "tiny"]
    # the suite: the session's null-engine suite (tests/suites.py, shared with the report's
    # tests), copied: the README's report commands write into it
    suite = null_suite(artifacts)["folder"]
    shutil.copytree(suite, cwd / "results" / suite.name)
    for args in (["scaling", *tiny, "--instances", "1-4", "--placement", "shared,pinned"],
                 ["scaling", "--engine", "null", "--instances", "1-4"],
                 ["latency", *tiny],
                 # the thread styles' example reads runs/styles (tflite: scaler binds its
                 # threads under model-zoo, as the study's launcher did)
                 ["scaling", *tiny, "--threading", "tuned,model-zoo", "--placement",
                  "shared,pinned", "--instances", "1,2,4", "--out", "runs/styles"]):
        done = _run([*args, *SHORT], cwd)
        assert done.returncode == 0, done.stderr[-2000:]
    results = cwd / "results"
    first = sorted(results.glob("scaling-*"))[0]
    for name in ("scaling-A", "scaling-B"):  # the README's compare example, as written
        shutil.copytree(first, results / name)
    # the committed runs of real machines the README's simulator examples name
    shutil.copytree(ROOT / "results" / "reference", results / "reference")
    return cwd


@pytest.mark.serial
@pytest.mark.builds
def test_the_readme_results_are_measured(artifacts) -> None:
    """Measures the README's results folder (the serial group runs this first)."""
    results = measured(artifacts) / "results"
    assert len(list(results.glob("scaling-*"))) == 4 and list(results.glob("suite-*"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, artifacts) -> Path:
    """A copy of the measured folder (the commands write beside its runs)."""
    cwd = tmp_path_factory.mktemp("readme") / "copy"
    shutil.copytree(measured(artifacts), cwd, symlinks=True)
    return cwd


def test_the_readme_has_the_commands() -> None:
    """Guards the parser: the README documents every results-reading command."""
    seen = {c.split()[1] for c in readme_commands()}
    assert seen == READS


def _shell(command: str, folder: Path) -> subprocess.CompletedProcess[str]:
    shell = str(SCALER) + command.removeprefix(".venv/bin/scaler")
    return subprocess.run(["bash", "-c", shell], cwd=folder, capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.long
def test_readme_commands_run_as_written(folder: Path) -> None:
    """Two commands at a time (they read, and each writes only its own new files), in README
    order: a ``capacity`` command, which reads what the ``simulate`` commands before it
    wrote, starts once every command before it has ended."""
    from concurrent.futures import ThreadPoolExecutor

    commands = readme_commands()
    done: dict[int, subprocess.CompletedProcess[str]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = {}
        for k, command in enumerate(commands):
            if command.split()[1] == "capacity":
                done.update({j: f.result() for j, f in pending.items()})
                pending = {}
            pending[k] = pool.submit(_shell, command, folder)
        done.update({j: f.result() for j, f in pending.items()})
    outcomes = []
    for k, command in enumerate(commands):
        assert "Traceback" not in done[k].stderr, (command, done[k].stderr[-2000:])
        outcomes.append((command, done[k].returncode, done[k].stdout, done[k].stderr))
    failed = [(c, rc, e.strip().splitlines()[-1:]) for c, rc, _, e in outcomes if rc != 0]
    assert not failed, failed
    by = {c: (out, e) for c, _, out, e in outcomes}
    # the glob caught a null-engine run beside a real engine's: the figures and the model
    # leave it out and say so, instead of mixing a million images/s into the curves
    plot = next(c for c in by if c.split()[1] == "plot")
    assert "left out" in by[plot][1] and "null engine" in by[plot][1]
    simulate = next(c for c in by if c.split()[1] == "simulate" and "--machine" in c
                    and "results/" in c)
    assert "left out" in by[simulate][1]
    assert "tflite fp32 tiny" in by[simulate][0]


@pytest.mark.serial  # measures
def test_a_mix_of_two_real_engines_is_refused_naming_the_folders(folder: Path,
                                                                 tmp_path: Path) -> None:
    """Two real engines cannot calibrate one model: one line naming each folder's kind."""
    results = tmp_path / "results"
    results.mkdir()
    tflite = sorted((folder / "results").glob("scaling-2*"))
    shutil.copytree(tflite[0], results / tflite[0].name)
    done = _run(["scaling", "--engine", "tflite", "--model", "tiny", "--precision", "int8",
                 "--instances", "1-2", *SHORT], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(str(p.relative_to(tmp_path)) for p in results.glob("scaling-*"))
    done = _run(["simulate", *runs, "--machine", "2s28c2t", "--instances", "1-2"], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert line.startswith("scaler: error: simulate: the runs mix")
    assert all(run in line for run in runs)
    assert "int8" in line and "fp32" in line
