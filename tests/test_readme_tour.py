"""The README's short tour runs as written on this machine (2 cores in CI; issue 24: its
``plan`` line asked for more partitions than such a machine has and was refused).

The lines that only read the machine run exactly as written; ``latency`` runs as written with
the null engine and short windows added (the tour's own model takes minutes). The ``scaling``
and ``suite`` lines run, as written plus a tiny model and short windows, in
``tests/test_readme.py``'s fixture, and its ``show`` and ``plot`` lines there as written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scaler.helpers import ROOT

SCALER = Path(sys.executable).parent / "scaler"
AS_WRITTEN = {"topology", "plan"}
SHORTENED = {"latency": ["--engine", "null", "--model", "tiny", "--min-duration", "0.3",
                         "--warmup", "0", "--min-queries", "10"]}
IN_TEST_README = {"scaling", "suite", "show", "plot"}


def tour() -> list[str]:
    """The commands of the tour's first code block, without their comments."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## A short tour"):].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", str(SCALER) + command.removeprefix(".venv/bin/scaler")],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_tour_line_is_run_by_a_test():
    commands = [c.split()[1] for c in tour()]
    assert all(c.startswith(".venv/bin/scaler ") for c in tour())
    assert set(commands) == AS_WRITTEN | set(SHORTENED) | IN_TEST_README


def test_the_lines_that_read_the_machine_run_as_written(tmp_path):
    for command in tour():
        if command.split()[1] in AS_WRITTEN:
            done = _shell(command, tmp_path)
            assert done.returncode == 0, (command, done.stderr)
            assert done.stdout.strip() and not done.stderr.strip(), (command, done.stderr)


@pytest.mark.serial  # measures and takes the lock (tests/conftest.py)
def test_the_latency_line_runs_with_the_null_engine(tmp_path):
    (command,) = [c for c in tour() if c.split()[1] == "latency"]
    done = _shell(" ".join([command, *SHORTENED["latency"]]), tmp_path)
    assert done.returncode == 0, (command, done.stderr)
    assert json.loads(done.stdout)["run"]
