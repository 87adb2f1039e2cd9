"""Summary lines: warnings gathered per percentile, comparisons without intervals said so.

The warnings are built by ``stats.sample_warnings`` (the code that writes them into run.json),
so these tests prove the two agree, and check the lines a reader gets."""

from __future__ import annotations

from scaler import stats, summaries


def _point(samples: int) -> dict:
    return {"warnings": stats.sample_warnings(samples)}


def test_thin_percentiles_gather_into_one_line_per_percentile() -> None:
    lines = summaries.point_notes([("shared N=1", _point(100)), ("pinned N=1", _point(700))],
                                  "  ")
    p99 = [line for line in lines if "p99 needs" in line]
    assert p99 == ["  note: p99 needs 662 queries to be bounded at 99% confidence "
                   "(LoadGen's early stopping): shared N=1 has 100"]
    assert any("p99.9 needs" in line and line.endswith("every point has fewer")
               for line in lines)
    assert not any("from 100 queries" in line for line in lines)  # no per-point copies


def test_every_point_thin_is_said_once() -> None:
    lines = summaries.point_notes([("a", _point(10)), ("b", _point(20))], "")
    assert any(line.endswith("every point has fewer") and "p99 needs" in line
               for line in lines)


def test_other_warnings_keep_their_places() -> None:
    lines = summaries.point_notes([("a", {"warnings": ["run rule not met"]}),
                                   ("b", {"warnings": ["run rule not met"]})], "  ")
    assert lines == ["  note (a, b): run rule not met"]


def _cmp(n: int, ratio: float, ci: list[float] | None, significant: bool = False) -> dict:
    return {"placement": "pinned", "baseline": "shared", "instances": n, "ratio": ratio,
            "ci95": ci, "significant": significant}


def test_comparisons_of_single_repeats_are_bare_ratios_and_say_they_are_no_findings() -> None:
    line, = summaries.comparison_lines([_cmp(1, 1.38, None), _cmp(2, 0.9, None)], "  ")
    assert line == ("  pinned/shared (one repeat: no intervals, not findings): "
                    "N=1 1.38x  N=2 0.90x")


def test_comparisons_with_intervals_give_verdicts() -> None:
    line, = summaries.comparison_lines([_cmp(1, 1.02, [0.95, 1.09]),
                                        _cmp(2, 1.5, [1.3, 1.7], True)], "  ")
    assert "one repeat" not in line
    assert "N=1 ~" in line and "no measurable difference" in line
    assert "N=2 1.50x [1.30, 1.70]" in line
