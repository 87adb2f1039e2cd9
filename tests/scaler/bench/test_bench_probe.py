"""The bench's speed-probe rows: the probe's cost per window edge, fed by a real probe."""

from __future__ import annotations

from scaler.bench.config import SECTIONS
from scaler.bench.probe import probe_bench
from scaler.bench.report import rows


def test_speedprobe_section_measures_edges_and_judges_the_share():
    assert "speedprobe" in SECTIONS
    got = probe_bench(reps=3)
    assert len(got["edge_ms"]) == 3 and got["median_edge_ms"] > 0
    assert got["share_of_window"] == 2 * got["median_edge_ms"] / 1e3 / 2.0
    table = [r for r in rows({"sections": {"speedprobe": got}}) if r["section"] == "speedprobe"]
    assert [r["target"] for r in table] == ["<= 20 ms", "< 1%"]
    assert table[1]["met"] == (got["share_of_window"] < 0.01)
