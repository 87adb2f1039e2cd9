"""The simulator's accuracy on real machines, for ``make bench``: the held-out error of
``scaler simulate --validate`` on every committed reference set (``results/reference``: runs
measured on real hosts, with repeats; see ``scaler.simulate.validate.reference_sets``).

Each set is calibrated on its instance counts up to cores + 1 (plus its latency runs) and
predicts the others; the error of a point is predicted / measured − 1, measured being the
median over the set's repeats. Runs in a child process with a timeout, like the simulator's
speed section, so numba's compile work and any failure stay out of the bench process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

MARK = "@bench-validation "
CODE = ("import json; from scaler.simulate.validate import validate_references; "
        "r = validate_references(queries={queries}); "
        "[x.pop('report') for x in r]; "
        f"print({MARK!r} + json.dumps(r), flush=True)")


def validation_bench(queries: int = 50_000, timeout_s: float = 900) -> dict[str, Any]:
    """Per reference set: held-out error (mean and max |error|), points, calibration."""
    done = subprocess.run([sys.executable, "-c", CODE.format(queries=queries)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise RuntimeError(f"validate_references() failed: {tail[0]}")
    sets = json.loads(lines[-1][len(MARK):])
    if not sets:
        return {"skipped": "no reference set with scaling runs under results/reference",
                "queries": queries}
    return {"sets": sets, "queries": queries}


def rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The section's rows for the bench table (``report.rows`` appends them)."""
    out: list[dict[str, Any]] = []

    def add(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        out.append({"section": "validation", "figure": figure, "value": value,
                    "target": target, "met": met, "conditions": ""})

    if "skipped" in section:
        add("simulate --validate on committed runs", f"skipped: {section['skipped']}")
    for s in section.get("sets", []):
        e = s["held_out_error"]
        others = (f"; others used {s['others_mean']:.0%} of the CPUs while measuring "
                  f"(worst run {s['others_worst']:.0%})"
                  if s.get("others_mean") is not None else "")
        worst = max((p for p in s["points"] if p["role"] == "held out"),
                    key=lambda p: abs(p["error"]))
        add(f"held-out throughput error, {s['set']} ({s['repeats']}+ repeat(s) per point, "
            f"{s['host']})",
            f"mean {e['mean_abs']:.1%}, max {e['max_abs']:.1%} ({worst['placement']} "
            f"N={worst['instances']}); calibrated on N = "
            f"{','.join(map(str, s['calibrated_on']))}, held out "
            f"{','.join(map(str, s['held_out']))}; fit rms {s['fit_rms_log_error']:.1%}; "
            f"measured {', '.join(s['measured'])}{others}",
            f"max < {e['target']:.0%}", bool(e["within_target"]))
    return out
