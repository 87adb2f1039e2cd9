"""The stop rule as a user meets it: ``scaler scaling`` records, per group, the queries and
duration it was asked for and those it recorded, and they do not depend on the machine's
speed: the null engine with a fixed service time runs as on a machine 5x slower (0.2x speed)
and 5x faster, and the answers are the same."""

from __future__ import annotations

import json

import pytest

from scaler.results import load_run
from tests.scaler.helpers import scaler_cmd

BASE_SERVICE_S = "0.002"


@pytest.mark.parametrize("speed", ["0.2", "5"])
def test_windows_end_at_their_rules_on_a_slower_and_a_faster_machine(tmp_path, speed):
    env = {"SCALER_NULL_SERVICE_S": BASE_SERVICE_S, "SCALER_NULL_SPEED": speed}
    service_s = float(BASE_SERVICE_S) / float(speed)
    docs = {}
    for rule, argv in (("queries", ("--instances", "1-2", "--min-duration", "0",
                                    "--min-queries", "41")),
                       ("duration", ("--instances", "2", "--min-duration", "0.3",
                                     "--min-queries", "2"))):
        r = scaler_cmd("scaling", "--engine", "null", "--placement",
                       "pinned", "--warmup", "0", *argv, "--out", str(tmp_path / rule),
                       "--json", env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        docs[rule] = load_run(json.loads(r.stdout)["run"])
    for g in docs["queries"].doc["groups"]:
        w = g["window"]
        assert g["per_instance"][0]["engine"]["service_s"] == pytest.approx(service_s)
        assert (w["requested_queries"], w["recorded_queries"], g["queries"]) == (41, 41, 41)
        assert w["requested_duration_s"] == 0 and w["instance_duration_s"] >= 0
        assert w["stopped_by"] == "rules_met" and g["rules_met"]
        # shares of 41 over N instances of one speed: 41, or 21 + 20
        assert sorted(i["queries"] for i in g["per_instance"]) == (
            [41] if g["instances"] == 1 else [20, 21])
    run = docs["duration"]
    arrays = run.samples()
    for g in run.doc["groups"]:
        w = g["window"]
        assert w["requested_duration_s"] == 0.3 and w["instance_duration_s"] >= 0.3
        if w["late_start_ms"] <= 1.0:  # began together (a busy machine may wake one late)
            assert w["recorded_duration_s"] >= 0.3
        assert g["rules_met"] and w["recorded_queries"] == g["queries"]
        # every instance stops at its first query end past the minimum duration: it
        # begins no query after that
        for i in g["per_instance"]:
            starts = arrays[f"g{g['id']}_i{i['index']}_start_ns"]
            assert starts[-1] - starts[0] < 0.3e9
