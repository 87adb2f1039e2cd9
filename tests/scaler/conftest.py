"""Fixtures for tests that run real worker processes."""

from __future__ import annotations

import asyncio
import os

import pytest
import uvloop

# The per-window speed probe re-measures a window that ran >10% below the run's best: on a
# machine shared by parallel tests that is most windows, and tests counting groups would
# count re-measures. Off for the suite (inherited by every CLI child); the tests of the
# probe turn it on for their own runs (tests/scaler/test_speedprobe.py).
os.environ.setdefault("SCALER_SPEED_PROBE", "off")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request):
    """Run coordinator tests on the default asyncio loop and on uvloop."""
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

