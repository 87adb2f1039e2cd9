"""Sysfs trees of real machine shapes, written once per test session; this process's
affinity and thread variables put back after a test that binds it."""

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


@pytest.fixture
def restored_affinity():
    """Put this process's CPU affinity and thread variables back after a test."""
    import importlib

    bind_module = importlib.import_module("affinity.bind")  # the package's bind is the function
    cpus = os.sched_getaffinity(0)
    keys = (*bind_module.THREAD_ENV_KEYS, *bind_module.OPENMP_KEYS)
    env = {key: os.environ.get(key) for key in keys}
    yield
    os.sched_setaffinity(0, cpus)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
