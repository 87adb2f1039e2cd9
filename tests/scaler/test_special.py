"""scaler.special against oracles it does not share code with: binomial tails summed exactly
with whole numbers, the printed table of Student's t, and scipy.special (a test dependency; the
tool no longer imports it on a run's path)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from scaler import special


def binomial_tail(n: int, x: Fraction, k: int) -> float:
    """P(binomial(n, x) >= k), exactly."""
    return float(sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(k, n + 1)))


@pytest.mark.parametrize("a, b", [(1, 1), (1, 5), (3, 4), (10, 2), (64, 2), (30, 30),
                                  (200, 3), (5, 120)])
@pytest.mark.parametrize("x", ["1/1000", "1/10", "1/2", "9/10", "99/100"])
def test_whole_parameters_give_the_binomial_tail(a, b, x):
    """I_x(a, b) = P(binomial(a + b - 1, x) >= a) for whole a, b."""
    exact = binomial_tail(a + b - 1, Fraction(x), a)
    got = special.betainc(a, b, float(Fraction(x)))
    assert got == pytest.approx(exact, rel=1e-11, abs=1e-300)


def test_edges_and_refusals():
    assert special.betainc(2, 3, 0.0) == 0.0 and special.betainc(2, 3, 1.0) == 1.0
    assert special.betainc(1, 1, 0.3) == pytest.approx(0.3, rel=1e-14)  # the uniform
    assert special.betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, rel=1e-13)  # symmetric
    for args in [(0, 1, 0.5), (1, 0, 0.5), (1, -1, 0.5), (1, 1, 1.5), (1, 1, -0.1)]:
        with pytest.raises(ValueError, match=r"needs a, b > 0 and 0 <= x <= 1"):
            special.betainc(*args)
    with pytest.raises(ValueError, match=r"stdtr\(0, 1.0\): needs df > 0"):
        special.stdtr(0, 1.0)
    for args in [(0, 0.5), (3, 0.0), (3, 1.0)]:
        with pytest.raises(ValueError, match=r"needs df > 0 and 0 < p < 1"):
            special.stdtrit(*args)


# the 97.5% and 99.5% quantiles of Student's t as printed in tables (to 6 decimals)
T_TABLE = {1: (12.706205, 63.656741), 2: (4.302653, 9.924843), 3: (3.182446, 5.840909),
           4: (2.776445, 4.604095), 9: (2.262157, 3.249836), 29: (2.045230, 2.756386),
           120: (1.979930, 2.617421)}


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_quantiles_are_the_tables(df):
    q975, q995 = T_TABLE[df]
    assert special.stdtrit(df, 0.975) == pytest.approx(q975, abs=1e-6)
    assert special.stdtrit(df, 0.995) == pytest.approx(q995, abs=1e-6)
    assert special.stdtrit(df, 0.025) == pytest.approx(-q975, abs=1e-6)
    assert special.stdtrit(df, 0.5) == 0.0
    assert special.stdtr(df, q975) == pytest.approx(0.975, abs=1e-6)  # q975 to 6 decimals


def test_the_density_is_students():
    """Closed forms: df = 1 is Cauchy's 1 / (pi (1 + t^2)); df = 2 is (2 + t^2)^(-3/2)."""
    for t in (-40.0, -3.0, -0.5, 0.0, 0.7, 2.0, 25.0):
        assert special.stdtpdf(1, t) == pytest.approx(1 / (math.pi * (1 + t * t)), rel=1e-13)
        assert special.stdtpdf(2, t) == pytest.approx((2 + t * t) ** -1.5, rel=1e-13)
    # df = 4: 3/8 (1 + t^2/4)^(-5/2)
    assert special.stdtpdf(4, 1.5) == pytest.approx(0.375 * (1 + 1.5**2 / 4) ** -2.5, rel=1e-13)


def test_t_with_one_degree_is_cauchy():
    """df = 1: P(T <= t) = 1/2 + atan(t)/pi, exactly known."""
    for t in (-30.0, -2.0, -0.5, 0.0, 0.3, 1.0, 7.0, 1e4):
        assert special.stdtr(1, t) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
    assert special.stdtr(3, math.inf) == 1.0 and special.stdtr(3, -math.inf) == 0.0


def test_the_same_figures_as_scipy():
    scipy_special = pytest.importorskip("scipy.special")
    for a in (0.5, 1.0, 2.5, 64.0, 662.0, 6636.0, 1e5):
        for b in (0.5, 1.0, 3.0, 500.0, 1e5):
            for x in (1e-6, 0.01, 0.5, 0.9, 0.99, 0.999):
                want = float(scipy_special.betainc(a, b, x))
                if want > 1e-250:
                    assert special.betainc(a, b, x) == pytest.approx(want, rel=1e-8), (a, b, x)
    for df in (1, 2, 3, 7, 2.7, 13.3, 100, 1e4):
        for p in (0.6, 0.9, 0.975, 0.995, 0.9995, 0.01):
            want = float(scipy_special.stdtrit(df, p))
            assert special.stdtrit(df, p) == pytest.approx(want, rel=1e-10), (df, p)
        for t in (-50.0, -3.0, -0.1, 0.2, 2.0, 100.0):
            want = float(scipy_special.stdtr(df, t))
            assert special.stdtr(df, t) == pytest.approx(want, rel=1e-10, abs=1e-15)
