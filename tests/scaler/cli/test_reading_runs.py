"""The read boundary of the commands that interpret runs (``scaler.cli.common.reading_runs``):
an error of a reader is a one-line refusal for a user, and a traceback under
``SCALER_DEBUG`` (the test suite sets it: a reader's programming error is not hidden)."""

from __future__ import annotations

import pytest

from scaler.cli.common import DEBUG_ENV, reading_runs
from scaler.errors import UsageError


def test_the_test_suite_lets_reader_errors_through():
    import os

    assert os.environ.get(DEBUG_ENV) == "1"  # tests/conftest.py
    with pytest.raises(KeyError, match="engine"), reading_runs(["r"]):
        {}["engine"]


def test_without_debug_a_reader_error_is_one_line_naming_the_runs(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV)
    with pytest.raises(UsageError) as info, reading_runs(["a", "b"]):
        {}["engine"]
    text = str(info.value)
    assert text.startswith("a, b: a run.json holds a value this scaler cannot read (KeyError: "
                           "'engine' in test_reading_runs.py:") and "\n" not in text
