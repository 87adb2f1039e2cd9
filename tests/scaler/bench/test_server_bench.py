"""The bench's open-loop harness rows (``scaler.bench.server``): a real served group of
pinned null instances, and the rows judged from raw figures (no speed is asserted)."""

from __future__ import annotations

from scaler.bench import report
from scaler.bench.server import GOAL_CEILING_QPS, serve_null, table_rows


def test_a_served_null_group_reports_what_the_ceiling_is_decided_on():
    row = serve_null(2, 200.0, 300)
    assert row["complete"] and not row["errors"]
    assert row["completed"] == 300 and row["requests"] == 300
    assert 0 < row["latency_us"]["p50"] <= row["latency_us"]["p99"]
    assert row["generator"]["issued"] == 300 and "lag_ms" in row["generator"]
    assert row["coordinator_cpu_us_per_request"] > 0
    # valid as a generator: kept up and served everything (the lag is the machine's)
    assert row["ok"] == bool(row["generator"]["kept_up"])


def section(ceiling_1, p50_1):
    at = {"latency_us": {"p50": p50_1, "p99": 3 * p50_1}, "coordinator_cpu_us_per_request": 5}
    return {"rows": [{"instances": 1, "ceiling_qps": ceiling_1, "at_10pct": at},
                     {"instances": 2, "ceiling_qps": None}]}


def test_the_goals_apply_to_one_instance_and_are_judged_from_raw_figures():
    rows = table_rows(section(GOAL_CEILING_QPS * 1.2, 30.0))
    assert [r[3] for r in rows] == [True, True, None]
    assert rows[2][1] == "no rate kept up"
    rows = table_rows(section(GOAL_CEILING_QPS * 0.5, 80.0))
    assert [r[3] for r in rows] == [False, False, None]
    full = {"sections": {"server": section(GOAL_CEILING_QPS * 2, 10.0)}}
    got = [r for r in report.rows(full) if r["section"] == "server"]
    assert [r["met"] for r in got] == [True, True, None]
    quick = [r for r in report.rows({**full, "quick": True}) if r["section"] == "server"]
    assert all(r["met"] is None for r in quick)  # --quick figures are not judged
