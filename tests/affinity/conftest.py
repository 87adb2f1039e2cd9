"""Sysfs trees of real machine shapes, written once per test session."""

from __future__ import annotations

import os

import pytest

from tests.affinity.fixtures import make_sysfs

# A folder of trees already written by make_sysfs.write_all_once: the mutation run
# (tests/mutation/run.py) writes them once for its thousands of short test sessions.
TREES_ENV = "SCALER_TEST_SYSFS_TREES"


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> dict[str, str]:
    """Machine name -> sysfs root of every fixture tree, good and broken."""
    out = os.environ.get(TREES_ENV) or str(tmp_path_factory.getbasetemp() / "sysfs")
    return make_sysfs.write_all_once(out)
