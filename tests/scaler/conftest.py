"""Fixtures for tests that run real worker processes, the tiny model's converted caches
(built once per session: tests/scaler/engines/ and tests/scaler/bench/ read them), and the
lock tests' holder of registration files."""

from __future__ import annotations

import asyncio
import fcntl
import os

import pytest
import uvloop


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request):
    """Run coordinator tests on the default asyncio loop and on uvloop."""
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop


def _converted(artifacts, engine: str) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model converted by ``engine`` to fp32 and int8, and
    the info of the loads that converted them: built once per session (tests/artifacts.py)
    in the process that asks first, which is the conversion the tests look at."""

    def build(folder):
        from scaler.engines import EngineSpec, load_engine

        return {precision: load_engine(EngineSpec(
                    engine=engine, model="tiny", precision=precision, threads=1,
                    inter_op_threads=1, cache_dir=str(folder))).info
                for precision in ("fp32", "int8")}

    first = artifacts.get(f"{engine}_cache", build)
    return str(artifacts.root / f"{engine}_cache"), first


@pytest.fixture(scope="session")
def tflite_cache(artifacts) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model converted to fp32 and int8, and the info of
    the loads that converted them."""
    return _converted(artifacts, "tflite")


@pytest.fixture(scope="session")
def openvino_cache(artifacts) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model as fp32 and int8 OpenVINO IR, and the info of
    the loads that converted them (int8 quantizes the cached fp32 IR)."""
    return _converted(artifacts, "openvino")


@pytest.fixture(scope="session")
def ort_cache(artifacts) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model as fp32 and int8 ONNX, and the info of the
    loads that made them (int8 quantizes the cached fp32 file)."""
    return _converted(artifacts, "onnxruntime")


@pytest.fixture
def held():
    """Holds registration files the way a live run does (an exclusive flock)."""
    fds = []

    def hold(path):
        fd = os.open(path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fds.append(fd)
        return path

    yield hold
    for fd in fds:
        os.close(fd)
