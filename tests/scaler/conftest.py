"""Fixtures for tests that run real worker processes."""

from __future__ import annotations

import asyncio

import pytest
import uvloop


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request):
    """Run coordinator tests on the default asyncio loop and on uvloop."""
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

