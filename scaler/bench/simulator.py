"""Hook for the simulator's own speed benchmark, ``scaler.simulate.bench.bench() -> dict``.

The simulator is written separately; when its ``bench.py`` is absent this section is skipped
with a note instead of failing. It runs in a child process with a timeout so a compile error
or a hang in it cannot take the rest of the bench down, and its numba JIT work does not run
in the process that measures everything else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MARK = "@bench-simulator "
SOURCE = Path(__file__).resolve().parents[1] / "simulate" / "bench.py"
CODE = ("import json; from scaler.simulate.bench import bench; "
        f"print({MARK!r} + json.dumps(bench()), flush=True)")


def simulator_bench(timeout_s: float = 900) -> dict[str, Any]:
    """The simulator's ``bench()`` result, or ``{"skipped": why}`` if it does not exist."""
    if not SOURCE.is_file():
        return {"skipped": f"{SOURCE.relative_to(SOURCE.parents[2])} does not exist yet"}
    done = subprocess.run([sys.executable, "-c", CODE], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"scaler.simulate.bench.bench() failed: {tail[0]}")
    return {"source": str(SOURCE), "result": json.loads(lines[-1][len(MARK):])}
