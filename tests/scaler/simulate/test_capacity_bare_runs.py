"""Runs that record no effective settings, requested settings or groups (a current-schema
run may leave them out) are refused with the one-line usage error, never a traceback
(hand-made run files, pure)."""

from __future__ import annotations

import json

import pytest

from scaler.errors import UsageError
from scaler.results import SCHEMA_VERSION, load_run
from scaler.simulate import capacity as cap


def bare_run(folder, scenario):
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                                                 "scenario": scenario}))
    return load_run(folder)


def test_a_latency_run_with_no_settings_or_groups_has_no_complete_group(tmp_path):
    run = bare_run(tmp_path / "r", "latency")
    with pytest.raises(UsageError) as caught:
        cap.plan_capacity([run], 100.0, 50.0, "p99")
    assert str(caught.value) == "no run here can support a capacity answer (no complete group)"


def test_a_run_left_out_without_settings_says_why(tmp_path):
    run = bare_run(tmp_path / "r", "offline")
    with pytest.raises(UsageError) as caught:
        cap.plan_capacity([run], 100.0, 50.0, "p99")
    assert str(caught.value) == (f"no run here can support a capacity answer ({run.path}: a "
                                 "offline run holds no layout to plan with)")


def test_figures_in_the_candidates_table_show_one_decimal_by_default():
    from scaler.simulate.capacity_text import _num

    assert _num(123.45) == "123.5" and _num(7) == "7.0" and _num(None) == "-"
    assert _num(3, "d") == "3"
