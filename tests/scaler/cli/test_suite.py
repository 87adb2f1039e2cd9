"""``scaler suite``'s options: the --quick preset and the layouts' precision.

The suite itself is measured end to end in tests/scaler/report (null engine) and
tests/test_readme.py (``--quick --precisions fp32``, where --quick's int8 layouts fall back
to the precision the suite runs)."""

from __future__ import annotations

import pytest

from scaler.cli import suite as suite_cli
from scaler.cli.runner import settings_for
from tests.scaler.helpers import scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def _defaults() -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(suite_cli.suite).parameters.items()}


def test_quick_fills_in_only_what_the_user_left_at_its_default() -> None:
    given = {**_defaults(), "quick": True, "batch": 32, "instances": "1-4"}
    o = suite_cli._quick(given)
    assert o["batch"] == 32 and o["instances"] == "1-4"  # given explicitly: kept
    for key, value in suite_cli.QUICK_SUITE.items():
        if key not in ("batch", "instances"):
            assert o[key] == value, key
    assert o["max_batch"] <= 8 and o["repeat"] == 1


def test_an_explicit_layout_precision_outside_the_precisions_is_refused() -> None:
    r = scaler_cmd("suite", "--engine", "null", "--precisions", "fp32",
                   "--layout-precision", "int8", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("scaler: error: --layout-precision int8: not among the "
                                "precisions this suite runs (fp32)")


def test_a_study_repeat_of_zero_is_refused() -> None:
    r = scaler_cmd("suite", "--engine", "null", "--study-repeat", "0", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "scaler: error: --study-repeat must be positive, not 0"


def test_the_study_run_takes_the_asked_engine_and_the_sweeps_largest_count() -> None:
    def make(scenario, **options):
        return settings_for(scenario, **{"engine": "null", "instances": "1,2,4", **options})

    skipped: dict = {}
    study = suite_cli._study(make, "tuned", ("int8", "fp32"), skipped)
    assert study == {"engine": "null", "precision": "int8", "instances": 4,
                     "why": "null, asked with --engine: no runtime threads to bind or spin "
                            "(it measures the harness only)"}
    # a suite that sweeps the study's style in every run needs no run of its own for it
    assert suite_cli._study(make, "tuned,model-zoo", ("int8",), skipped) is None
    assert skipped == {}
