"""One real suite measured once per test session and shared by the tests that read a suite
(the report's, the README's): measured with the null engine (real worker processes, real
pinning, the real noise meter; no inference), the smallest that still has every experiment
and two repeats. Built through the session's artifact cache (tests/artifacts.py): whichever
test asks first measures it, in the serial group (both askers are serial)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.scaler.helpers import scaler_cmd

SUITE_ARGS = ["suite", "--engine", "null", "--quick", "--instances", "1-2", "--repeat", "2",
              "--max-batch", "1", "--precisions", "fp32,int8", "--min-duration", "0.2",
              "--min-queries", "5", "--warmup", "0"]


# the null engine's queries last 0.5 ms here, not ~1 µs: a 0.2 s window records ~400 queries,
# not ~200,000 (whose samples every reader, report and export of the suite then carries)
NULL_ENV = {"SCALER_NULL_SERVICE_S": "0.0005"}


def null_suite(artifacts: Any) -> dict[str, Any]:
    """``scaler suite`` as a user runs it (``SUITE_ARGS``): its folder, its report and what
    it printed. A test that changes the folder copies it first."""

    def build(folder: Path) -> dict[str, str]:
        out = folder / "out"
        r = scaler_cmd(*SUITE_ARGS, "--out", str(out), timeout=400, env=NULL_ENV)
        assert r.returncode == 0, r.stderr[-3000:]
        found = re.findall(r"^report: (\S+)$", r.stdout, re.M)
        assert len(found) == 1, r.stdout
        return {"folder": str(next(out.glob("suite-*"))), "report": found[0],
                "stdout": r.stdout, "stderr": r.stderr}

    value = artifacts.get("null_suite", build)
    return {**value, "folder": Path(value["folder"]), "report": Path(value["report"])}
