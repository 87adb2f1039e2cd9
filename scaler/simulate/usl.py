"""Gunther's Universal Scalability Law fitted to measured scaling series.

X(N) = λN / (1 + σ(N−1) + κN(N−1)): λ is the throughput of one instance, σ the contention
(the serial share that caps throughput at the Amdahl ceiling λ/σ) and κ the coherency cost
that makes throughput fall past N* = √((1−σ)/κ). The fit is scipy's bounded least squares
(σ in [0, 1], κ ≥ 0) on relative residuals, because throughput noise grows with throughput;
confidence intervals come from the covariance s²(JᵀJ)⁻¹ of those residuals at the solution
and a Student t quantile, and the band around the curve from the delta method. R² is on
the plain scale.
Three parameters need at least four distinct instance counts, so fewer is refused rather
than "fitted" exactly through the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from scaler.errors import UsageError

MIN_DISTINCT_N = 4
LEVEL = 0.95


class FitRefused(UsageError):
    """The points cannot support a three-parameter fit."""


def usl(n: Any, lam: float, sigma: float, kappa: float) -> Any:
    """Throughput at concurrency ``n`` (scalar or numpy array)."""
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def _gradient(n: Any, lam: float, sigma: float, kappa: float) -> Any:
    """∂X/∂(λ, σ, κ) at ``n``: rows of the Jacobian, also used for the band."""
    import numpy as np

    n = np.asarray(n, dtype=float)
    d = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)
    return np.stack([n / d, -lam * n * (n - 1.0) / d**2, -lam * n * n * (n - 1.0) / d**2],
                    axis=-1)


@dataclass(frozen=True)
class UslFit:
    """A fitted series; intervals are two-sided at ``LEVEL`` (clipped at the bounds)."""

    lam: float
    sigma: float
    kappa: float
    lam_ci: tuple[float, float]
    sigma_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    r2: float
    points: int
    n_min: int
    n_max: int
    cov: tuple[tuple[float, ...], ...]
    t_value: float
    notes: tuple[str, ...] = field(default=())

    @property
    def kappa_negligible(self) -> bool:
        """κ adds less than 0.1% to the denominator at the largest measured N."""
        return self.kappa * self.n_max**2 < 1e-3 * (1.0 + self.sigma * self.n_max)

    @property
    def sigma_negligible(self) -> bool:
        """σ adds less than 0.1% to the denominator at the largest measured N: the bounded
        solver approaches σ = 0 without reaching it (1e-5 on exactly linear data)."""
        return self.sigma * (self.n_max - 1) < 1e-3

    @property
    def peak_instances(self) -> float | None:
        """N* where throughput peaks; None when κ is negligible (no peak within reach)."""
        if self.kappa_negligible or self.sigma >= 1.0:
            return None
        return math.sqrt((1.0 - self.sigma) / self.kappa)

    @property
    def peak_throughput_ips(self) -> float | None:
        n = self.peak_instances
        return None if n is None else float(usl(n, self.lam, self.sigma, self.kappa))

    @property
    def peak_in_range(self) -> bool:
        n = self.peak_instances
        return n is not None and self.n_min <= n <= self.n_max

    @property
    def amdahl_ceiling_ips(self) -> float | None:
        """λ/σ: the most throughput contention alone allows (None when σ is negligible)."""
        return None if self.sigma_negligible else self.lam / self.sigma

    def predict(self, n: Any) -> Any:
        return usl(n, self.lam, self.sigma, self.kappa)

    def band(self, n: Any) -> tuple[Any, Any]:
        """Lower and upper confidence band of the fitted mean curve at ``n``."""
        import numpy as np

        g = _gradient(n, self.lam, self.sigma, self.kappa)
        var = np.einsum("...i,ij,...j->...", g, np.asarray(self.cov), g)
        half = self.t_value * np.sqrt(np.maximum(var, 0.0))
        x = self.predict(np.asarray(n, dtype=float))
        return np.maximum(x - half, 0.0), x + half

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda": self.lam, "lambda_ci": list(self.lam_ci),
            "sigma": self.sigma, "sigma_ci": list(self.sigma_ci),
            "kappa": self.kappa, "kappa_ci": list(self.kappa_ci),
            "confidence": LEVEL, "r2": self.r2,
            "peak_instances": self.peak_instances,
            "peak_throughput_ips": self.peak_throughput_ips,
            "peak_in_range": self.peak_in_range, "kappa_negligible": self.kappa_negligible,
            "sigma_negligible": self.sigma_negligible,
            "amdahl_ceiling_ips": self.amdahl_ceiling_ips,
            "points": self.points, "instances_range": [self.n_min, self.n_max],
            "notes": list(self.notes),
        }


def fit_usl(ns: list[float], xs: list[float]) -> UslFit:
    """Fit λ, σ, κ to throughputs ``xs`` measured at instance counts ``ns``.

    Raises :class:`FitRefused` with fewer than four distinct instance counts or without a
    positive throughput.
    """
    import numpy as np
    from scipy import optimize, stats

    n = np.asarray(ns, dtype=float)
    x = np.asarray(xs, dtype=float)
    distinct = len(set(n.tolist()))
    if distinct < MIN_DISTINCT_N:
        raise FitRefused(f"{distinct} distinct instance count(s); the USL has three parameters "
                         f"and needs at least {MIN_DISTINCT_N}")
    if not np.all(np.isfinite(x)) or np.any(x < 0) or not np.any(x > 0):
        raise FitRefused("throughputs must be finite, non-negative and not all zero")
    first = int(np.argmin(n))
    lam0 = max(x[first] / n[first], 1e-12)

    weight = 1.0 / np.maximum(x, 1e-12 * x.max())  # relative residuals

    def residuals(p: Any) -> Any:
        return (usl(n, *p) - x) * weight

    res = optimize.least_squares(residuals, x0=[lam0, 0.05, 1e-4],
                                 jac=lambda p: _gradient(n, *p) * weight[:, None],
                                 bounds=([1e-12, 0.0, 0.0], [np.inf, 1.0, np.inf]),
                                 x_scale="jac", method="trf")
    lam, sigma, kappa = (float(v) for v in res.x)
    ssr = float(np.sum((usl(n, lam, sigma, kappa) - x) ** 2))
    sst = float(np.sum((x - x.mean()) ** 2))
    dof = len(x) - 3  # at least 1: four distinct instance counts are required
    jac = _gradient(n, lam, sigma, kappa) * weight[:, None]
    s2 = float(np.sum(res.fun**2)) / dof
    cov = np.linalg.pinv(jac.T @ jac) * s2
    t_value = float(stats.t.ppf(0.5 + LEVEL / 2, dof))
    half = t_value * np.sqrt(np.maximum(np.diag(cov), 0.0))
    cis = [(float(max(v - h, 0.0)), float(min(v + h, hi))) for v, h, hi in
           zip((lam, sigma, kappa), half, (np.inf, 1.0, np.inf))]
    fit = UslFit(lam=lam, sigma=sigma, kappa=kappa, lam_ci=cis[0], sigma_ci=cis[1],
                 kappa_ci=cis[2], r2=1.0 - ssr / sst if sst > 0 else 1.0, points=len(x),
                 n_min=int(n.min()), n_max=int(n.max()),
                 cov=tuple(tuple(float(c) for c in row) for row in cov), t_value=t_value)
    if fit.sigma_negligible:
        fit = replace(fit, notes=(*fit.notes, "σ ≈ 0: no measurable contention"))
    return _with_peak_note(fit)


def _with_peak_note(fit: UslFit) -> UslFit:
    """Say plainly where the peak lies relative to what was measured."""
    from scaler.simulate.fitting import readable

    peak = fit.peak_instances
    if peak is not None and fit.peak_in_range:
        note = f"throughput peaks at N* = {peak:.1f}, inside the measured range"
    elif peak is None and not fit.kappa_negligible:
        note = "σ = 1 and κ > 0: throughput is highest at one instance and falls after it"
    elif peak is None:
        ceiling = fit.amdahl_ceiling_ips
        note = ("κ ≈ 0: no peak within reach; throughput keeps rising toward "
                + (f"the Amdahl ceiling λ/σ = {readable(ceiling)} images/s" if ceiling
                   else "linear scaling (σ ≈ 0)"))
    else:
        side = "beyond" if peak > fit.n_max else "below"
        note = (f"the peak N* = {peak:.1f} lies {side} the measured range "
                f"{fit.n_min}-{fit.n_max}: an extrapolation")
    return replace(fit, notes=(*fit.notes, note))


def series_points(runs: list[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Scaling points of runs grouped by series (placement, engine, precision, model,
    simulated); runs of the same series are pooled."""
    from scaler.schema import Run
    from scaler.summaries import scaling_series

    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        if run.scenario != "scaling":
            continue
        model = Run.top(run.doc).effective.model
        for s in scaling_series(run.doc.get("groups") or []):
            simulated = bool(s.get("simulated"))
            key = (s["placement"], s["engine"], s["precision"], model, simulated)
            entry = out.setdefault(key, {"placement": key[0], "engine": key[1],
                                         "precision": key[2], "model": model,
                                         "simulated": simulated, "runs": [], "points": []})
            entry["runs"].append(str(run.path))
            entry["points"] += [(p["instances"], p["throughput_ips"]) for p in s["points"]
                                if p["throughput_ips"] is not None]
    return out


def fit_runs(runs: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A fit per series of the runs, and the series refused with the reason."""
    fits, refused = [], []
    for entry in series_points(runs).values():
        head = {k: entry[k] for k in ("placement", "engine", "precision", "model",
                                      "simulated", "runs")}
        ns = [p[0] for p in entry["points"]]
        try:
            fit = fit_usl(ns, [p[1] for p in entry["points"]])
        except FitRefused as exc:
            refused.append({**head, "instances": sorted(set(ns)), "reason": str(exc)})
            continue
        fits.append({**head, **fit.to_dict()})
    return fits, refused
