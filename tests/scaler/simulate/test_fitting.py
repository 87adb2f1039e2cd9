"""How ``fit`` reads: readable numbers, parameters the data cannot pin down, and what it
leaves out. The series are hand-made throughputs chosen to expose each case."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.results import Run
from scaler.simulate.fitting import lines, parse_include, readable, select, unconstrained
from scaler.simulate.usl import fit_usl


@pytest.mark.parametrize("value,text", [
    (None, "none"), (float("inf"), "unbounded"), (0.0, "0"), (1.784e-19, "0"),
    (0.000121126, "0.000121"), (0.0014928, "0.00149"), (0.5, "0.5"), (6.2031, "6.203"),
    (620.31, "620.3"), (4154914.03, "4,154,914"), (5e26, "5 × 10^26"), (2.5e9, "2.5 × 10^9"),
    (-0.25, "-0.25"),
])
def test_readable(value, text):
    assert readable(value) == text


def fitted(ns, xs):
    f = fit_usl(ns, xs)
    return {**f.to_dict(), "placement": "pinned", "engine": "tf", "precision": "fp32",
            "model": "m", "simulated": False}


def test_linear_series_has_no_ceiling_and_no_peak():
    f = fitted([1, 2, 3, 4, 5, 6], [100, 200, 300, 400, 500, 600])
    text = "\n".join(lines([f], []))
    assert "Amdahl ceiling lambda/sigma: none" in text and "peak: none" in text
    assert "e-" not in text and "e+" not in text
    assert unconstrained(f) == []


def test_noisy_four_points_leave_sigma_and_kappa_unconstrained():
    """Four points whose noise hides the shape: the intervals span the whole range."""
    f = fitted([1, 2, 3, 4], [100, 260, 180, 330])
    warnings = unconstrained(f)
    assert any(w.startswith("sigma is unconstrained") for w in warnings), f["sigma_ci"]
    text = "\n".join(lines([f], []))
    assert "e-" not in text


def test_clear_contention_is_constrained():
    ns = list(range(1, 9))
    xs = [100 * n / (1 + 0.1 * (n - 1) + 0.002 * n * (n - 1)) for n in ns]
    f = fitted(ns, xs)
    assert unconstrained(f) == []
    assert f["sigma"] == pytest.approx(0.1, rel=1e-3)
    assert "Amdahl ceiling lambda/sigma: 1,000 images/s" in "\n".join(lines([f], []))


def test_select_leaves_out_what_is_not_asked(tmp_path):
    groups = [{"placement": "pinned", "instances": n, "engine": "tf", "status": "complete",
               "oversubscribed": n > 2, "emulated": False} for n in (1, 2, 3)]
    real = Run(tmp_path / "a", {"scenario": "scaling", "effective": {"engine": "tf"},
                                "groups": groups})
    null = Run(tmp_path / "b", {"scenario": "scaling", "effective": {"engine": "null"},
                                "groups": groups})
    emulated = Run(tmp_path / "c", {"scenario": "scaling", "effective": {"engine": "tf"},
                                    "emulated": True, "groups": groups})
    kept, notes = select([real, null, emulated], set())
    assert [r.path for r in kept] == [real.path]
    assert [g["instances"] for g in kept[0].doc["groups"]] == [1, 2]
    assert len(notes) == 3 and "pinned N=3" in notes[0]
    kept, notes = select([real, null, emulated], {"null", "emulated", "oversubscribed"})
    assert len(kept) == 3 and notes == []
    assert all(len(r.doc["groups"]) == 3 for r in kept)


def test_parse_include():
    assert parse_include(["null,oversubscribed", "emulated"]) == {"null", "oversubscribed",
                                                                 "emulated"}
    with pytest.raises(UsageError, match="--include"):
        parse_include(["all"])
