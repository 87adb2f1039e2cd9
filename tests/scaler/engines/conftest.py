"""Shared fixtures: one thread setting for every in-process engine, and user model files.

TensorFlow fixes its thread pools once per process, so every in-process test loads its
engines with ``THREADS``; tests of other thread counts run in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from scaler.engines import EngineSpec

THREADS = 1


def _spec(**fields) -> EngineSpec:
    base = EngineSpec(model="tiny", threads=THREADS, inter_op_threads=THREADS)
    return dataclasses.replace(base, **fields)


@pytest.fixture
def spec():
    """Makes EngineSpecs for in-process tests: ``THREADS`` threads, the tiny model."""
    return _spec


@pytest.fixture(scope="session")
def user_models(tmp_path_factory) -> dict[str, str]:
    """The tiny model saved as a user would: a .keras file and a SavedModel folder."""
    from scaler.engines.models import build_builtin, import_tf

    import_tf(_spec())
    folder = tmp_path_factory.mktemp("user_models")
    model = build_builtin("tiny", seed=0)
    paths = {"keras": str(folder / "tiny.keras"), "savedmodel": str(folder / "tiny_sm")}
    model.save(paths["keras"])
    model.export(paths["savedmodel"], verbose=False)
    assert os.path.isfile(os.path.join(paths["savedmodel"], "saved_model.pb"))
    return paths


@pytest.fixture
def run_python():
    """Runs code in a fresh Python (its own TF thread pools) and returns its last JSON line."""

    def run(code: str, timeout: float = 120) -> object:
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            timeout=timeout,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout.splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def tflite_cache(tmp_path_factory) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model converted to fp32 and int8, and the info of
    the loads that converted them."""
    from scaler.engines import load_engine

    folder = str(tmp_path_factory.mktemp("tflite_cache"))
    first = {
        precision: load_engine(_spec(engine="tflite", precision=precision, cache_dir=folder)).info
        for precision in ("fp32", "int8")
    }
    return folder, first


@pytest.fixture(scope="session")
def openvino_cache(tmp_path_factory) -> tuple[str, dict[str, dict]]:
    """A cache folder holding the tiny model as fp32 and int8 OpenVINO IR, and the info of
    the loads that converted them (int8 quantizes the cached fp32 IR)."""
    from scaler.engines import load_engine

    folder = str(tmp_path_factory.mktemp("openvino_cache"))
    first = {
        precision: load_engine(_spec(engine="openvino", precision=precision,
                                     cache_dir=folder)).info
        for precision in ("fp32", "int8")
    }
    return folder, first
