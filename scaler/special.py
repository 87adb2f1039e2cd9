"""The special functions scaler's statistics need, in plain Python: the regularized incomplete
beta function (LoadGen's early-stopping rule) and Student's t distribution (intervals and
Welch's test).

``scipy.special`` has them, but loading its compiled ufuncs cost every run 0.3-0.45 s of
wall time on these machines, more than a short measurement itself and about 35x that in an
emulated guest; these need only ``math``. They agree with ``scipy.special.betainc``,
``stdtr`` and ``stdtrit`` to about 1e-12 (tests/scaler/test_special.py compares them over
grids and at LoadGen's published counts).
"""

from __future__ import annotations

import functools
import math

_EPS = 1e-15  # relative change at which the continued fraction has converged
_TINY = 1e-300
_MAX_TERMS = 1_000_000  # O(sqrt(max(a, b))) are needed: ~450 for a, b of 10^5


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1: for whole
    a and b, the chance that a binomial(a + b - 1, x) count is at least a.

    The continued fraction of Numerical Recipes (modified Lentz), on whichever side of the
    mean a / (a + b) converges fast, with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc({a}, {b}, {x}): needs a, b > 0 and 0 <= x <= 1")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _fraction(b, a, 1.0 - x) / b


def _fraction(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = _nonzero(1.0 - qab * x / qap)
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"betainc({a}, {b}, {x}): no convergence")  # pragma: no cover


def _nonzero(v: float) -> float:
    return v if abs(v) >= _TINY else _TINY


def stdtr(df: float, t: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (not only whole)."""
    if not df > 0:
        raise ValueError(f"stdtr({df}, {t}): needs df > 0")
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    if t == 0.0:
        return 0.5
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t < 0 else 1.0 - tail


def stdtpdf(df: float, t: float) -> float:
    """The density of Student's t with ``df`` > 0 degrees of freedom at ``t``."""
    return math.exp(math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0)
                    - 0.5 * math.log(df * math.pi) - (df + 1.0) / 2.0 * math.log1p(t * t / df))


@functools.lru_cache(maxsize=4096)
def stdtrit(df: float, p: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom, 0 < p < 1:
    Newton's steps on :func:`stdtr` inside a bracket that bisection keeps when a step would
    leave it."""
    if not df > 0 or not 0.0 < p < 1.0:
        raise ValueError(f"stdtrit({df}, {p}): needs df > 0 and 0 < p < 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -stdtrit(df, 1.0 - p)
    lo, hi = 0.0, 1.0
    while stdtr(df, hi) < p:  # the quantile lies in [lo, hi]
        lo, hi = hi, hi * 2.0
    t = (lo + hi) / 2.0
    for _ in range(200):
        error = stdtr(df, t) - p
        if error == 0.0:
            return t
        if error > 0:
            hi = t
        else:
            lo = t
        step = t - error / stdtpdf(df, t)
        t_next = step if lo < step < hi else (lo + hi) / 2.0
        if abs(t_next - t) <= 1e-14 * max(1.0, abs(t)) or hi - lo <= 1e-14 * max(1.0, hi):
            return t_next
        t = t_next
    return t  # pragma: no cover
