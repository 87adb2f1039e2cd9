"""The USL fit: recovers known parameters, refuses what it cannot fit, says where the peak is."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.simulate.usl import FitRefused, fit_runs, fit_usl, usl
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
