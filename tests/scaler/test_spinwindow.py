"""The spin window estimator (``scaler.spinwindow``) on CPU-time-over-gap series written by
hand, whose window is known before the fit runs."""

from __future__ import annotations

import pytest

from scaler.spinwindow import estimate_window, summarize

GAPS = (0.2, 1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 400.0)


def plateau(window: float, rate: float = 1.0) -> list[float]:
    """CPU per pool thread over each gap of a spinner of ``window`` ms at ``rate``."""
    return [rate * min(g, window) for g in GAPS]


@pytest.mark.parametrize("window", [1.0, 5.0, 35.0, 150.0])
def test_the_knee_of_a_clean_series_is_its_window(window):
    fit = estimate_window(GAPS, plateau(window))
    assert fit["window_ms"] == pytest.approx(window, rel=0.02)
    assert fit["spin_cpu_ms"] == pytest.approx(window, rel=0.02)
    assert fit["spins"] and not fit["censored"] and fit["rate"] == pytest.approx(1.0, rel=0.02)


def test_a_loaded_spinner_burns_the_same_cpu_budget_over_a_longer_wall_time():
    """Half a CPU: the same 30 ms of CPU, the knee at 60 ms of wall time."""
    fit = estimate_window(GAPS, plateau(60.0, rate=0.5))
    assert fit["spin_cpu_ms"] == pytest.approx(30.0, rel=0.02)
    assert fit["window_ms"] == pytest.approx(60.0, rel=0.02)
    assert fit["rate"] == pytest.approx(0.5, rel=0.02)


def test_still_growing_at_the_longest_gap_is_a_lower_bound():
    fit = estimate_window(GAPS, plateau(1000.0))
    assert fit["censored"] and fit["window_ms"] == 400.0


def test_a_runtime_that_sleeps_at_once_has_no_window():
    fit = estimate_window(GAPS, [0.001 * g for g in GAPS])
    assert fit == {**fit, "window_ms": 0.0, "spin_cpu_ms": 0.0, "spins": False}


def test_repeats_give_the_median_and_the_spread():
    series = [(GAPS, plateau(w)) for w in (30.0, 35.0, 40.0)]
    s = summarize(series)
    assert s["repeats"] == 3 and s["spins"] and not s["censored"]
    assert s["spin_cpu_ms"] == pytest.approx(35.0, rel=0.02)
    lo, hi = s["spin_cpu_range_ms"]
    assert lo == pytest.approx(30.0, rel=0.02) and hi == pytest.approx(40.0, rel=0.02)
    assert s["relative_spread"] == pytest.approx(10.0 / 35.0, rel=0.05)
    noisy = [(GAPS, [c * (1.1 if k % 2 else 0.9) for k, c in enumerate(plateau(35.0))])]
    assert summarize(noisy)["spin_cpu_ms"] == pytest.approx(35.0, rel=0.15)


@pytest.mark.parametrize("gaps,cpu", [((5.0, 5.0), (1.0, 2.0)), ((0.0, 5.0), (0.0, 1.0)),
                                      ((1.0, 5.0), (1.0, float("nan")))])
def test_bad_series_are_refused(gaps, cpu):
    with pytest.raises(ValueError):
        estimate_window(gaps, cpu)
    with pytest.raises(ValueError):
        summarize([])
