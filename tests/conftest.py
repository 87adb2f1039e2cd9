"""Settings for the whole test suite.

Tests run in parallel with pytest-xdist (``make test``: ``-n 2 --dist loadgroup``) except those
marked ``serial`` (they measure, lock CPUs or boot VMs), which all run one after another on
one xdist worker. A test that takes the measurement lock (runs ``scaler`` to measure) without
the marker fails loudly: its measurement would overlap another test's.
"""

from __future__ import annotations

import os

import pytest

from tests.priority import Priority

# The per-window speed probe re-measures a window that ran >10% below the run's idle speed: on a
# machine shared by parallel tests that is most windows, tests counting groups would count
# re-measures, and every re-measure is a window more. Off for the whole suite (inherited by
# every CLI child: tests/, tests/faults/ and tests/scaler/ alike); the tests of the probe turn
# it on for their own runs (tests/scaler/test_speedprobe.py).
os.environ.setdefault("SCALER_SPEED_PROBE", "off")
# A run's automatic figures (matplotlib's import and a PNG: 1.2 s of CPU, more than a short
# test run measures) are left out of every test's runs; the tests of the figures turn them on
# (tests/scaler/cli/test_run.py, test_predict.py, test_simulate_server.py; scaler plot and the
# report draw their own figures and are tested as they are).
os.environ.setdefault("SCALER_PLOTS", "off")
# A programming error in a reader of runs is a traceback in the tests, not the one-line "a
# run.json holds a value this scaler cannot read" of scaler.cli.common.reading_runs (which
# once hid one): a damaged run must be refused by the load itself (scaler.schema).
os.environ.setdefault("SCALER_DEBUG", "1")

# Property tests draw the same examples on every run (a fresh clone has no example database:
# random draws made two CI runs fail on examples no earlier run had tried, each a tolerance of
# the test). `HYPOTHESIS_PROFILE=explore pytest ...` draws new ones, as a search for defects.
try:
    from hypothesis import settings as _hypothesis

    # no deadline: an example's wall time is the machine's speed and load (tests beside the
    # serial group run at a lower priority), not something a test may fail on
    _hypothesis.register_profile("ci", derandomize=True, deadline=None)
    _hypothesis.register_profile("explore", derandomize=False, deadline=None)
    _hypothesis.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Expensive real artifacts (converted models, IRs, measured runs) built once per session,
    shared by its xdist workers (tests/artifacts.py)."""
    from tests.artifacts import Artifacts

    return Artifacts.for_session(tmp_path_factory.getbasetemp())


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


SERIAL_GROUP = "serial"


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the groups
def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.serial`` tests form one xdist group: one worker runs them in turn.
    Tests marked ``builds`` (they measure an artifact that tests outside the group read:
    tests/suites.py) go first, so that the readers find it built by the time they run
    beside the group (a reader that comes first builds it itself: the artifact cache's lock
    makes the other wait). Then tests marked ``long``: xdist hands out the serial group
    and other groups first (the largest first), then single tests in this order, so a long
    one handed out last would be the suite's last minute, one CPU busy."""
    for item in items:
        if item.get_closest_marker("serial") is not None:
            item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))
    items.sort(key=lambda item: (item.get_closest_marker("builds") is None,
                                 item.get_closest_marker("long") is None))  # stable


# Tests beside the serial group run at a low CPU weight: they fill the CPU the group (the
# suite's wall time) leaves idle instead of slowing it (tests/priority.py).
_PRIORITY = Priority()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: nothing runs beside anything
    if item.get_closest_marker("serial") is not None:
        _PRIORITY.in_the_group()
    else:
        _PRIORITY.beside_the_group()


def pytest_unconfigure(config):
    _PRIORITY.close()


@pytest.fixture
def quiet_beside():
    """The tests beside the serial group held to 1% of a CPU while this test runs (for a
    test that needs a quiet machine; tests/priority.py)."""
    from tests.priority import paused_beside

    with paused_beside() as paused:
        yield paused


def _lock_files(folder) -> dict[str, tuple[int, int]]:
    """Registrations and CPU lock files in the lock folder, with their change stamps."""
    out = {}
    for path in folder.iterdir():
        if path.name.startswith("run-") or path.name.startswith("cpu"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            out[path.name] = (stat.st_mtime_ns, stat.st_size)
    return out


@pytest.fixture(autouse=True)
def serial_if_it_measures(request, private_measurement_locks):
    """Fails a test that took the measurement lock (a run registered in this session's lock
    folder, in this process or a child) without ``@pytest.mark.serial``."""
    before = _lock_files(private_measurement_locks)
    yield
    if request.node.get_closest_marker("serial") is not None:
        return
    after = _lock_files(private_measurement_locks)
    taken = sorted(name for name, stamp in after.items()
                   if name.startswith("run-") and before.get(name) != stamp)
    if taken:
        pytest.fail(f"{request.node.nodeid} took the measurement lock ({', '.join(taken)}) "
                    "without @pytest.mark.serial: mark it (or its module: pytestmark = "
                    "pytest.mark.serial) so that it never measures beside another test",
                    pytrace=False)
