"""Sysfs trees of real machine shapes, written once per test session."""

from __future__ import annotations

import pytest

from tests.affinity.fixtures import make_sysfs


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> dict[str, str]:
    """Machine name -> sysfs root of every fixture tree, good and broken."""
    return make_sysfs.write_all_once(str(tmp_path_factory.getbasetemp() / "sysfs"))
