"""The session's null-engine suite (tests/suites.py), measured first in the serial group: the
report's tests and the README's read it beside the group."""

from __future__ import annotations

import pytest

from tests.suites import null_suite


@pytest.mark.serial
@pytest.mark.builds
def test_the_session_suite_is_measured(artifacts):
    suite = null_suite(artifacts)
    assert suite["report"].is_file() and (suite["folder"] / "suite.json").is_file()
