"""The bench's validation section: the simulator's held-out error on the committed runs of
real machines (``results/reference``), reported as rows judged against the 10% target."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from scaler.bench import report
from scaler.bench.validation import rows
from tests.scaler.helpers import ROOT


def test_bench_reports_the_held_out_error_of_every_reference_set(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-m", "scaler.bench", "--quick", "--only", "validation",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "bench.json").read_text())
    sets = {s["set"]: s for s in doc["sections"]["validation"]["sets"]}
    assert any(name.startswith("suite-") for name in sets)  # the reference demo suite
    assert sets["validation-tf-fp32"]["repeats"] >= 3  # the set measured for this purpose
    for s in sets.values():
        e = s["held_out_error"]
        assert 0 < e["mean_abs"] <= e["max_abs"] and e["target"] == 0.10
        assert s["held_out"] and all(p["repeats"] >= 1 for p in s["points"])
    assert "held-out throughput error" in r.stdout
    table = [row for row in report.rows(doc) if row["section"] == "validation"]
    assert len(table) == len(sets) and all(row["met"] in (True, False) for row in table)


def test_rows_judge_the_worst_held_out_point():
    def section(errors):
        points = [{"placement": "pinned", "instances": n, "role": "held out", "error": e}
                  for n, e in zip((4, 5), errors)]
        worst = max(abs(e) for e in errors)
        return {"sets": [{"set": "s", "repeats": 3, "host": "h", "calibrated_on": [1, 2, 3],
                          "held_out": [4, 5], "points": points, "fit_rms_log_error": 0.02,
                          "measured": ["t1_ms"], "others_mean": 0.03, "others_worst": 0.08,
                          "held_out_error": {"mean_abs": sum(map(abs, errors)) / 2,
                                             "max_abs": worst, "target": 0.10,
                                             "within_target": worst <= 0.10}}]}

    (ok,) = rows(section([0.02, -0.05]))
    assert ok["met"] is True and "max 5.0% (pinned N=5)" in ok["value"]
    (bad,) = rows(section([0.02, -0.15]))
    assert bad["met"] is False and "others used 3%" in bad["value"]
    assert rows({"skipped": "none"})[0]["value"] == "skipped: none"
