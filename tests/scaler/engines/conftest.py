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
def user_models(artifacts) -> dict[str, str]:
    """The tiny model saved as a user would: a .keras file and a SavedModel folder."""

    def build(folder):
        from scaler.engines.models import build_builtin, import_tf

        import_tf(_spec())
        model = build_builtin("tiny", seed=0)
        paths = {"keras": str(folder / "tiny.keras"), "savedmodel": str(folder / "tiny_sm")}
        model.save(paths["keras"])
        model.export(paths["savedmodel"], verbose=False)
        return paths

    paths = artifacts.get("user_models", build)
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
