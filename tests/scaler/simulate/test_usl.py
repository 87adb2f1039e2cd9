"""The USL fit: recovers known parameters, refuses what it cannot fit, says where the peak is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaler.results import Run
from scaler.simulate.usl import (
    FitRefused,
    UslFit,
    _with_peak_note,
    fit_runs,
    fit_usl,
    series_points,
    usl,
)
from tests.scaler.simulate.conftest import fake_measured_run


@pytest.mark.parametrize("lam,sigma,kappa", [(100.0, 0.05, 0.002), (25.0, 0.2, 0.0005),
                                             (10.0, 0.02, 0.01)])
def test_recovers_known_parameters_from_noisy_data(lam, sigma, kappa):
    rng = np.random.default_rng(7)
    ns = np.repeat(np.arange(1, 17), 3)
    xs = usl(ns, lam, sigma, kappa) * (1 + 0.02 * rng.standard_normal(ns.size))
    fit = fit_usl(ns.tolist(), xs.tolist())
    for value, true, ci in ((fit.lam, lam, fit.lam_ci), (fit.sigma, sigma, fit.sigma_ci),
                            (fit.kappa, kappa, fit.kappa_ci)):
        assert ci[0] <= true <= ci[1], (true, value, ci)
    assert fit.lam == pytest.approx(lam, rel=0.05)
    assert fit.r2 > 0.98
    n_star = np.sqrt((1 - sigma) / kappa)
    if n_star <= 16:
        assert fit.peak_in_range and fit.peak_instances == pytest.approx(n_star, rel=0.1)
        assert fit.peak_throughput_ips == pytest.approx(usl(n_star, lam, sigma, kappa),
                                                        rel=0.03)
    else:  # beyond the data: only its side is known
        assert not fit.peak_in_range
    assert fit.amdahl_ceiling_ips == pytest.approx(fit.lam / fit.sigma)


def test_band_brackets_the_curve_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    widths = []
    for reps in (1, 8):
        ns = np.repeat(np.arange(1, 9), reps)
        xs = usl(ns, 50.0, 0.1, 0.01) * (1 + 0.03 * rng.standard_normal(ns.size))
        fit = fit_usl(ns.tolist(), xs.tolist())
        lo, hi = fit.band(np.arange(1, 9))
        assert np.all(lo <= fit.predict(np.arange(1, 9))) and np.all(fit.predict(
            np.arange(1, 9)) <= hi)
        widths.append(float(np.mean(hi - lo)))
    assert widths[1] < widths[0]


@pytest.mark.parametrize("ns", [[1, 2, 3], [1, 1, 2, 2, 4, 4, 4], [8]])
def test_refuses_fewer_than_four_distinct_counts(ns):
    with pytest.raises(FitRefused, match="at least 4"):
        fit_usl(ns, [10.0 * n for n in ns])


def test_says_plainly_where_the_peak_lies():
    ns = list(range(1, 9))
    amdahl = fit_usl(ns, [usl(n, 10.0, 0.1, 0.0) for n in ns])
    assert amdahl.peak_instances is None and not amdahl.peak_in_range
    assert any("κ ≈ 0" in note and "Amdahl ceiling" in note for note in amdahl.notes)
    inside = fit_usl(ns, [usl(n, 10.0, 0.05, 0.05) for n in ns])
    assert inside.peak_in_range and any("inside the measured range" in n for n in inside.notes)
    beyond = fit_usl(ns, [usl(n, 10.0, 0.05, 0.004) for n in ns])
    assert not beyond.peak_in_range and beyond.peak_instances > 8
    assert any("beyond the measured range" in n for n in beyond.notes)


def test_fit_runs_fits_each_series_and_reports_refused(tmp_path, model):
    run = fake_measured_run(tmp_path / "run", model, instances=(1, 2, 3, 4, 5))
    short = fake_measured_run(tmp_path / "short", model, placements=("pinned",),
                              instances=(1, 2))
    fits, refused = fit_runs([run])
    assert {f["placement"] for f in fits} == {"shared", "pinned"}
    assert all(f["points"] == 5 and 0 <= f["sigma"] <= 1 and f["kappa"] >= 0 for f in fits)
    fits, refused = fit_runs([short])
    assert not fits and "at least 4" in refused[0]["reason"]


# --- exact results on noise-free and hand-made inputs ----------------------------------
# The expected values below are computed here from the USL formula, a numerical Jacobian
# and scipy's t quantile, independently of the module's own gradient and covariance code.


def numeric_jacobian(f, p, step=1e-6):
    """Central differences of ``f`` at ``p``, one column per parameter."""
    p = np.asarray(p, dtype=float)
    columns = []
    for i in range(p.size):
        h = step * max(abs(p[i]), 1e-3)
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        columns.append((f(up) - f(down)) / (2 * h))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("ns", [[1, 2, 4, 8], list(range(1, 9)), [2, 3, 5, 7, 11, 16]])
@pytest.mark.parametrize("lam,sigma,kappa", [(100.0, 0.05, 0.002), (25.0, 0.2, 0.0005),
                                             (10.0, 0.02, 0.01), (3.5, 0.6, 0.05)])
def test_noise_free_points_give_the_parameters_back(ns, lam, sigma, kappa):
    fit = fit_usl(ns, [usl(n, lam, sigma, kappa) for n in ns])
    assert fit.lam == pytest.approx(lam, rel=1e-3)
    assert fit.sigma == pytest.approx(sigma, rel=1e-3)
    assert fit.kappa == pytest.approx(kappa, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert (fit.points, fit.n_min, fit.n_max) == (len(ns), min(ns), max(ns))
    assert fit.predict(np.array(ns, dtype=float)) == pytest.approx(
        [usl(n, lam, sigma, kappa) for n in ns], rel=1e-3)


FOUR_N = np.array([1.0, 2.0, 4.0, 8.0])
FOUR_X = usl(FOUR_N, 40.0, 0.08, 0.003) * np.array([1.02, 0.97, 1.03, 0.99])


def test_four_point_fit_is_the_least_squares_optimum_of_relative_residuals():
    from scipy import optimize

    fit = fit_usl(FOUR_N.tolist(), FOUR_X.tolist())
    # an independent fit: relative residuals, scipy's own finite-difference Jacobian
    ref = optimize.least_squares(lambda p: (usl(FOUR_N, *p) - FOUR_X) / FOUR_X,
                                 x0=[30.0, 0.1, 0.001], bounds=([0, 0, 0], [np.inf, 1, np.inf]),
                                 xtol=1e-14, ftol=1e-14, gtol=1e-14)
    assert [fit.lam, fit.sigma, fit.kappa] == pytest.approx(ref.x.tolist(), rel=1e-4)
    # absolute residuals would land elsewhere: the weighting matters on this data
    plain = optimize.least_squares(lambda p: usl(FOUR_N, *p) - FOUR_X, x0=ref.x,
                                   bounds=([0, 0, 0], [np.inf, 1, np.inf]))
    assert abs(plain.x[1] - fit.sigma) > 1e-3 * fit.sigma
    ssr = float(np.sum((usl(FOUR_N, *ref.x) - FOUR_X) ** 2))
    assert fit.r2 == pytest.approx(1 - ssr / float(np.sum((FOUR_X - FOUR_X.mean()) ** 2)),
                                   rel=1e-6)


def test_four_point_intervals_use_one_degree_of_freedom():
    from scipy import stats

    fit = fit_usl(FOUR_N.tolist(), FOUR_X.tolist())
    p = np.array([fit.lam, fit.sigma, fit.kappa])
    t = stats.t.ppf(0.975, 4 - 3)
    assert fit.t_value == pytest.approx(t, rel=1e-12) and t == pytest.approx(12.7062, rel=1e-4)

    def relative(q):
        return (usl(FOUR_N, *q) - FOUR_X) / FOUR_X

    jac = numeric_jacobian(relative, p)
    s2 = float(np.sum(relative(p) ** 2)) / (4 - 3)
    cov = np.linalg.inv(jac.T @ jac) * s2
    assert np.asarray(fit.cov) == pytest.approx(cov, rel=1e-4)
    half = t * np.sqrt(np.diag(cov))
    assert fit.lam_ci == pytest.approx((p[0] - half[0], p[0] + half[0]), rel=1e-4)
    assert fit.sigma_ci == pytest.approx((max(p[1] - half[1], 0.0), min(p[1] + half[1], 1.0)),
                                         rel=1e-4)
    assert fit.kappa_ci == pytest.approx((max(p[2] - half[2], 0.0), p[2] + half[2]), rel=1e-4)
    # the band at each N is the delta method over that covariance
    ns = np.array([1.0, 3.0, 8.0, 12.0])
    grad = numeric_jacobian(lambda q: usl(ns, *q), p)
    band = t * np.sqrt(np.einsum("ki,ij,kj->k", grad, cov, grad))
    lo, hi = fit.band(ns)
    mid = usl(ns, *p)
    assert hi == pytest.approx(mid + band, rel=1e-4)
    assert lo == pytest.approx(np.maximum(mid - band, 0.0), rel=1e-4, abs=1e-9)


def test_more_points_give_more_degrees_of_freedom():
    from scipy import stats

    ns = [1, 2, 3, 4, 5, 6, 8]
    xs = [usl(n, 10.0, 0.1, 0.01) * (1 + 0.02 * (-1) ** n) for n in ns]
    assert fit_usl(ns, xs).t_value == pytest.approx(stats.t.ppf(0.975, len(ns) - 3), rel=1e-12)


@pytest.mark.parametrize("xs", [[10, 20, float("nan"), 40], [10, 20, float("inf"), 40],
                                [10, -1, 30, 40], [0, 0, 0, 0]])
def test_refuses_throughputs_that_are_not_measurements(xs):
    with pytest.raises(FitRefused, match="^throughputs must be finite, non-negative and not all "
                                         "zero$"):
        fit_usl([1, 2, 3, 4], xs)


def test_exactly_four_distinct_counts_are_enough_and_zeros_are_allowed():
    fit = fit_usl([1, 2, 3, 4, 4], [10.0, 18.0, 24.0, 28.0, 0.0])
    assert fit.points == 5 and fit.n_max == 4
    with pytest.raises(FitRefused, match="^3 distinct instance count"):
        fit_usl([1, 2, 3, 3], [10.0, 18.0, 24.0, 24.0])


def test_linear_and_super_linear_scaling_have_no_amdahl_ceiling():
    ns = [1, 2, 3, 4, 6, 8]
    for xs in ([10.0 * n for n in ns], [10.0 * n**1.1 for n in ns]):
        fit = fit_usl(ns, xs)
        assert fit.sigma_negligible and fit.amdahl_ceiling_ips is None
        assert fit.peak_instances is None
        assert "σ ≈ 0: no measurable contention" in fit.notes
        assert fit.notes[-1] == ("κ ≈ 0: no peak within reach; throughput keeps rising toward "
                                 "linear scaling (σ ≈ 0)")
    real = fit_usl(ns, [usl(n, 10.0, 0.1, 0.0) for n in ns])
    assert not real.sigma_negligible and real.amdahl_ceiling_ips == pytest.approx(100.0)
    assert real.notes == ("κ ≈ 0: no peak within reach; throughput keeps rising toward the "
                          "Amdahl ceiling λ/σ = 100 images/s",)


def make_fit(**values):
    base = dict(lam=10.0, sigma=0.1, kappa=0.01, lam_ci=(9.0, 11.0), sigma_ci=(0.05, 0.15),
                kappa_ci=(0.0, 0.02), r2=0.99, points=8, n_min=1, n_max=8,
                cov=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), t_value=2.5)
    base.update(values)
    return UslFit(**base)


def test_negligible_thresholds_and_peak_range_boundaries():
    # κ n_max² against 1e-3 (1 + σ n_max): 0.0016 κ-units either side of the threshold
    at = 1e-3 * (1 + 0.1 * 8) / 64
    assert make_fit(kappa=at * 0.99).kappa_negligible
    assert not make_fit(kappa=at * 1.01).kappa_negligible
    assert make_fit(sigma=0.99e-3 / 7).sigma_negligible
    assert not make_fit(sigma=1.01e-3 / 7).sigma_negligible
    # N* = sqrt((1 - σ)/κ) exactly on the measured ends is inside the range
    assert make_fit(sigma=0.0, kappa=1 / 64).peak_instances == pytest.approx(8.0)
    assert make_fit(sigma=0.0, kappa=1 / 64).peak_in_range
    assert make_fit(sigma=0.0, kappa=1 / 64 * 0.99).peak_in_range is False
    assert make_fit(sigma=0.0, kappa=1.0, n_min=1).peak_in_range
    assert make_fit(sigma=0.0, kappa=1.01, n_min=1).peak_in_range is False
    fit = make_fit(sigma=0.2, kappa=0.05)
    n_star = np.sqrt(0.8 / 0.05)
    assert fit.peak_instances == pytest.approx(n_star)
    assert fit.peak_throughput_ips == pytest.approx(usl(n_star, 10.0, 0.2, 0.05))
    assert make_fit(sigma=1.0, kappa=0.05).peak_instances is None
    assert make_fit(sigma=1.0, kappa=0.05).peak_throughput_ips is None


def test_peak_notes_name_the_peak_and_the_range():
    assert _with_peak_note(make_fit(sigma=0.2, kappa=0.05)).notes[-1] == (
        "throughput peaks at N* = 4.0, inside the measured range")
    assert _with_peak_note(make_fit(sigma=0.2, kappa=0.002, n_max=12)).notes[-1] == (
        "the peak N* = 20.0 lies beyond the measured range 1-12: an extrapolation")
    assert _with_peak_note(make_fit(sigma=0.2, kappa=3.2, n_min=2)).notes[-1] == (
        "the peak N* = 0.5 lies below the measured range 2-8: an extrapolation")
    assert _with_peak_note(make_fit(sigma=1.0, kappa=0.05, notes=("x",))).notes == (
        "x", "σ = 1 and κ > 0: throughput is highest at one instance and falls after it")


def test_fit_json_holds_every_figure():
    fit = make_fit(sigma=0.2, kappa=0.05, notes=("n",))
    doc = fit.to_dict()
    assert doc == {
        "lambda": 10.0, "lambda_ci": [9.0, 11.0], "sigma": 0.2, "sigma_ci": [0.05, 0.15],
        "kappa": 0.05, "kappa_ci": [0.0, 0.02], "confidence": 0.95, "r2": 0.99,
        "peak_instances": fit.peak_instances, "peak_throughput_ips": fit.peak_throughput_ips,
        "peak_in_range": True, "kappa_negligible": False, "sigma_negligible": False,
        "amdahl_ceiling_ips": 50.0, "points": 8, "instances_range": [1, 8], "notes": ["n"],
    }


# --- scaling points of runs ------------------------------------------------------------


def scaling_run(name, groups, model="resnet50", scenario="scaling"):
    doc = {"scenario": scenario, "effective": {"model": model}, "groups": groups}
    return Run(Path("/runs") / name, doc)


def group(placement, n, ips, status="complete", simulated=None):
    g = {"status": status, "placement": placement, "engine": "tf", "precision": "fp32",
         "instances": n, "throughput_ips": ips, "per_instance": []}
    if simulated is not None:
        g["simulated"] = simulated
    return g


def test_series_points_pool_runs_of_a_series_and_skip_the_rest():
    a = scaling_run("a", [group("pinned", 1, 10.0), group("pinned", 2, 19.0),
                          group("shared", 1, 9.0), group("pinned", 3, None),
                          group("pinned", 4, 30.0, status="failed")])
    b = scaling_run("b", [group("pinned", 3, 27.0)])
    simulated = scaling_run("s", [group("pinned", 4, 33.0, simulated=True)])
    other = scaling_run("c", [group("pinned", 5, 50.0)], model="tiny")
    latency = scaling_run("d", [group("pinned", 6, 1.0)], scenario="latency")
    series = series_points([latency, a, b, simulated, other])
    assert list(series) == [("pinned", "tf", "fp32", "resnet50", False),
                            ("shared", "tf", "fp32", "resnet50", False),
                            ("pinned", "tf", "fp32", "resnet50", True),
                            ("pinned", "tf", "fp32", "tiny", False)]
    pinned = series[("pinned", "tf", "fp32", "resnet50", False)]
    assert pinned == {"placement": "pinned", "engine": "tf", "precision": "fp32",
                      "model": "resnet50", "simulated": False, "runs": ["/runs/a", "/runs/b"],
                      "points": [(1, 10.0), (2, 19.0), (3, 27.0)]}
    assert series[("pinned", "tf", "fp32", "resnet50", True)]["points"] == [(4, 33.0)]


def test_fit_runs_fits_pooled_points_and_says_why_it_refuses():
    ns = [1, 2, 3, 4, 6]
    run = scaling_run("a", [group("shared", n, 9.0 * n) for n in (1, 2, 2, 3)]
                      + [group("pinned", n, usl(n, 10.0, 0.1, 0.01)) for n in ns])
    fits, refused = fit_runs([run])
    assert len(fits) == 1
    assert {k: fits[0][k] for k in ("placement", "engine", "precision", "model", "simulated",
                                    "runs", "points")} == {
        "placement": "pinned", "engine": "tf", "precision": "fp32", "model": "resnet50",
        "simulated": False, "runs": ["/runs/a"], "points": 5}
    assert fits[0]["sigma"] == pytest.approx(0.1, rel=1e-3)
    assert refused == [{"placement": "shared", "engine": "tf", "precision": "fp32",
                        "model": "resnet50", "simulated": False, "runs": ["/runs/a"],
                        "instances": [1, 2, 3],
                        "reason": "3 distinct instance count(s); the USL has three parameters "
                                  "and needs at least 4"}]


def test_slow_instances_falling_throughput_and_flat_data():
    ns = [1, 2, 4, 8]
    slow = fit_usl(ns, [usl(n, 0.5, 0.1, 0.01) for n in ns])  # below 1 image/s per instance
    assert slow.lam == pytest.approx(0.5, rel=1e-3)
    # contention beyond sigma = 1 (throughput falls from the first instance): sigma stays
    # within its bound, and so does its interval
    falling = fit_usl(ns, [10.0 * n / (1 + 1.5 * (n - 1)) for n in ns])
    assert falling.sigma <= 1.0 and falling.sigma_ci[1] <= 1.0
    flat = fit_usl([1, 2, 3, 4], [10.0] * 4)
    assert flat.r2 == 1.0  # no variance to explain: no division by zero
    rng = np.random.default_rng(3)
    small = fit_usl(ns * 2, [usl(n, 0.05, 0.1, 0.01) * (1 + 0.05 * rng.standard_normal())
                             for n in ns * 2])  # total variance below 1 (images/s)^2
    assert 0.0 < small.r2 < 1.0


def test_band_at_one_count_and_on_a_small_scale():
    rng = np.random.default_rng(5)
    ns = [1, 2, 3, 4, 6, 8]
    xs = [usl(n, 0.2, 0.1, 0.01) * (1 + 0.03 * rng.standard_normal()) for n in ns]
    fit = fit_usl(ns, xs)
    lo, hi = fit.band(3)
    (lo_a,), (hi_a,) = fit.band(np.array([3]))
    assert np.ndim(lo) == 0 and (float(lo), float(hi)) == pytest.approx((lo_a, hi_a))
    grad = numeric_jacobian(lambda q: usl(3.0, *q), [fit.lam, fit.sigma, fit.kappa])
    half = fit.t_value * np.sqrt(grad @ np.asarray(fit.cov) @ grad)  # variance far below 1
    assert float(hi) == pytest.approx(float(fit.predict(3.0)) + half, rel=1e-4)
