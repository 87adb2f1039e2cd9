"""The peak search's decisions (``scenarios.server``: ``next_rate``, ``floor_qps``,
``request_count``, ``PeakSearch``) driven by verdicts the test gives: every rate expected
below is worked out by hand (doubling, halving, bisection), no worker runs."""

from __future__ import annotations

import pytest

from scaler.scenarios.server import PeakSearch, floor_qps, next_rate, request_count


def drive(search, peak, latency=lambda rate: rate / 10):
    """Probe until the search stops; a rate passes when it is at most ``peak``."""
    tried = []
    while (rate := search.next()) is not None:
        tried.append(rate)
        search.record(rate <= peak, latency(rate))
    return tried


def test_next_rate_by_hand():
    assert next_rate(0.0, None, 10.0, 0.1, 1.0) == 10.0  # nothing tried: the start
    assert next_rate(10.0, None, 10.0, 0.1, 1.0) == 20.0  # passing: double
    assert next_rate(0.0, 10.0, 10.0, 0.1, 1.0) == 5.0  # failing: halve
    assert next_rate(0.0, 1.5, 10.0, 0.1, 1.0) == 1.0  # a half under the floor: the floor
    assert next_rate(0.0, 1.0, 10.0, 0.1, 1.0) is None  # the floor failed
    assert next_rate(0.0, 0.5, 10.0, 0.1, 1.0) is None  # under the floor failed
    assert next_rate(20.0, 40.0, 10.0, 0.1, 1.0) == 30.0  # bracketed: bisect
    assert next_rate(20.0, 22.0, 10.0, 0.1, 1.0) is None  # 10% apart: precise enough
    assert next_rate(20.0, 22.5, 10.0, 0.1, 1.0) == 21.25  # 12.5% apart: bisect again
    assert next_rate(3.0, 4.0, 10.0, 0.1, 1.0) == 3.5
    assert next_rate(1.0, 2.0, 10.0, 0.1, 1.0) == 1.5
    assert next_rate(1.0, 1.0000015, 1.0, 0.0, 1.0) == 1.000001  # rounded to 6 decimals


def test_the_floor_is_one_request_per_bound_length():
    assert floor_qps(50.0) == 20.0
    assert floor_qps(2000.0) == 0.5
    assert floor_qps(None) == 1.0
    assert floor_qps(0.0) == 1.0


def test_a_probe_is_sized_by_the_rules_and_early_stopping():
    assert request_count("p99", 10.0, 100, 5.0) == 662  # early stopping needs 662
    assert request_count("p90", 10.0, 100, 5.0) == 100  # 64 needed, the rules ask 100
    assert request_count("p50", 10.0, 5, 1.0) == 11
    assert request_count("p90", 100.0, 10, 5.0) == 500  # 5 s at 100 requests/s
    assert request_count("p90", 100.5, 10, 5.0) == 503  # 502.5 rounds up
    assert request_count("mean", 1.0, 3, 1.0) == 3  # no early stopping for the mean
    assert request_count("p95", 0.0, 0, 0.0) == 1  # nor for p95: at least one request


def test_a_search_doubles_then_bisects_to_the_precision():
    s = PeakSearch(10.0, 0.1, floor=1.0)
    # 10, 20, 40 pass; 80 fails; bisect 60 (fail), 50 (pass), 55 (fail): 10% apart
    assert drive(s, peak=52.0) == [10.0, 20.0, 40.0, 80.0, 60.0, 50.0, 55.0]
    found = s.answer()
    assert (found["peak_qps"], found["first_failing_qps"]) == (50.0, 55.0)
    assert (found["floor_qps"], found["start_qps"]) == (1.0, 10.0)
    assert found["probes"][0] == {"rate_qps": 10.0, "passed": True, "latency_ms": 1.0}
    assert found["probes"][3] == {"rate_qps": 80.0, "passed": False, "latency_ms": 8.0}
    assert [p["passed"] for p in found["probes"]] == [True, True, True, False, False, True,
                                                      False]
    assert "lowest_qps" not in found and "lowest_latency_ms" not in found


def test_a_search_halves_from_a_failing_start():
    s = PeakSearch(80.0, 0.1, floor=1.0)
    # 80, 40 fail; 20 passes; bisect 30 (pass), 35 (fail), 32.5 (pass): 7.7% apart
    assert drive(s, peak=33.0) == [80.0, 40.0, 20.0, 30.0, 35.0, 32.5]
    found = s.answer()
    assert (found["peak_qps"], found["first_failing_qps"]) == (32.5, 35.0)


def test_no_rate_down_to_the_floor_answers_with_the_lowest_rate():
    s = PeakSearch(10.0, 0.1, floor=3.0)
    assert drive(s, peak=0.0, latency=lambda rate: rate * 100) == [10.0, 5.0, 3.0]
    found = s.answer()
    assert found["peak_qps"] is None and found["first_failing_qps"] == 3.0
    assert (found["lowest_qps"], found["lowest_latency_ms"]) == (3.0, 300.0)
    assert found["floor_qps"] == 3.0


def test_the_floor_defaults_and_never_exceeds_the_start():
    assert PeakSearch(64.0, 0.1).answer()["floor_qps"] == 1.0  # start / 64
    assert PeakSearch(5.0, 0.1, floor=20.0).answer()["floor_qps"] == 5.0  # the start
    assert PeakSearch(64.0, 0.1, floor=-1.0).answer()["floor_qps"] == 1.0
    s = PeakSearch(5.0, 0.1, floor=20.0)
    assert drive(s, peak=0.0) == [5.0]  # the start is the floor: nothing under it
    empty = PeakSearch(10.0, 0.1).answer()
    assert empty == {"peak_qps": None, "first_failing_qps": None, "floor_qps": 0.156,
                     "start_qps": 10.0, "probes": []}


def test_a_search_that_never_fails_stops_at_max_probes():
    s = PeakSearch(1.0, 0.1, floor=1.0, max_probes=4)
    assert drive(s, peak=1e9) == [1.0, 2.0, 4.0, 8.0]
    found = s.answer()
    assert (found["peak_qps"], found["first_failing_qps"]) == (8.0, None)
    assert len(found["probes"]) == 4


def test_rates_and_answers_are_rounded_to_a_thousandth():
    s = PeakSearch(1.0001, 0.0, floor=1.0, max_probes=2)
    assert s.next() == 1.0
    s.record(True, 2.0)
    assert s.next() == 2.0  # 2.0002
    s.record(False)
    found = s.answer()
    assert (found["peak_qps"], found["first_failing_qps"], found["start_qps"]) == (1.0, 2.0,
                                                                                  1.0)
    assert found["probes"] == [{"rate_qps": 1.0, "passed": True, "latency_ms": 2.0},
                               {"rate_qps": 2.0, "passed": False, "latency_ms": None}]
    assert s.good == pytest.approx(1.0001) and s.bad == pytest.approx(2.0002)


def test_record_needs_a_rate_first():
    with pytest.raises(AssertionError, match="^record\\(\\) follows next\\(\\)$"):
        PeakSearch(10.0, 0.1).record(True)


def test_fractional_rates_keep_three_decimals():
    s = PeakSearch(2.5004, 0.1, floor=1.0)
    # 2.5004 fails, 1.2502 passes; bisect 1.8753 and 1.56275 (fail), 1.406475 and
    # 1.4846125 (pass): 1.56275 / 1.4846125 is within 10%
    assert drive(s, peak=1.5) == [2.5, 1.25, 1.875, 1.563, 1.406, 1.485]
    found = s.answer()
    assert [p["rate_qps"] for p in found["probes"]] == [2.5, 1.25, 1.875, 1.563, 1.406, 1.485]
    assert (found["start_qps"], found["peak_qps"], found["first_failing_qps"]) == (
        2.5, 1.485, 1.563)
    assert PeakSearch(2.5004, 0.1, floor=1.2345).answer()["floor_qps"] == 1.234


def test_a_search_stops_after_64_probes_by_default():
    s = PeakSearch(1.0, 0.1, floor=1.0)
    assert len(drive(s, peak=float("inf"))) == 64
