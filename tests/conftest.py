"""Settings for the whole test suite."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_measurement_locks(tmp_path_factory):
    """Runs started by the tests lock CPUs in a folder of this test session, not in the
    machine's /run/scaler: test suites of other checkouts on the same machine neither wait
    for these runs nor refuse them (tests of the lock itself use folders of their own)."""
    folder = tmp_path_factory.mktemp("locks")
    old = os.environ.get("SCALER_LOCK_DIR")
    os.environ["SCALER_LOCK_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SCALER_LOCK_DIR", None)
    else:
        os.environ["SCALER_LOCK_DIR"] = old
