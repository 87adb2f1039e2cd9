"""Run folders: a versioned ``run.json``, raw samples in ``samples.npz``, and plots.

A run folder is written under a temporary name and renamed into place, so a reader never sees
half a run. ``load_run`` checks the schema version, upgrades older documents and says clearly
what is wrong with a foreign or corrupt folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.errors import ScalerError, UsageError

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.npz"
# schema_version -> function upgrading a document of that version to the next one
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class ResultsError(ScalerError):
    """A run folder that cannot be read or written."""


@dataclass(frozen=True)
class Run:
    path: Path
    doc: dict[str, Any]

    @property
    def scenario(self) -> str:
        return self.doc["scenario"]

    def samples(self) -> dict[str, Any]:
        """Raw per-query samples, keyed ``g{group}_i{instance}_{start|end}_ns``."""
        import numpy as np

        path = self.path / SAMPLES_FILE
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: not a readable samples file ({exc})") from None


def check_output_dir(out: str | Path) -> Path:
    """The folder runs are written into: created if needed, refused if not writable."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} is not a writable folder")
    return path


def new_run_path(out: Path, scenario: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = out / f"{scenario}-{stamp}", 1
    while path.exists():
        n += 1
        path = out / f"{scenario}-{stamp}-{n}"
    return path


def host_info() -> dict[str, Any]:
    """What a reader needs to trust the numbers: machine, kernel and software versions."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("scaler", "numpy", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert",
                    "uvloop"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"hostname": platform.node(), "kernel": platform.release(),
            "machine": platform.machine(), "versions": versions}


def save_run(path: Path, doc: dict[str, Any], arrays: dict[str, Any]) -> Path:
    """Write ``run.json`` and ``samples.npz`` into ``path`` atomically (temp folder + rename).

    Saving again to the same path replaces the earlier version in one rename, so a sweep can
    save after every point and an interruption keeps everything measured so far.
    """
    import numpy as np

    doc = {"schema_version": SCHEMA_VERSION, **doc}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if path.exists():  # keep plots or other files written next to an earlier version
            for item in path.iterdir():
                if item.name not in (RUN_FILE, SAMPLES_FILE) and item.is_file():
                    shutil.copy2(item, tmp / item.name)
        with open(tmp / SAMPLES_FILE, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / RUN_FILE, "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            old.rename(path)
        raise
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in run.json")


def load_run(path: str | Path) -> Run:
    """Read a run folder (or its run.json); a clear ResultsError for anything else."""
    path = Path(path)
    if path.is_file() and path.name == RUN_FILE:
        path = path.parent
    file = path / RUN_FILE
    if not path.exists():
        raise UsageError(f"{path}: no such run folder")
    if not file.is_file():
        raise ResultsError(f"{path}: not a scaler run folder (no {RUN_FILE})")
    try:
        doc = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{file}: corrupt run file ({exc})") from None
    if not isinstance(doc, dict) or "schema_version" not in doc or "scenario" not in doc:
        raise ResultsError(f"{file}: not a scaler run file (no schema_version or scenario)")
    version = doc["schema_version"]
    if type(version) is not int or version < 1:  # not isinstance: True is an int
        raise ResultsError(f"{file}: bad schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{file}: schema_version {version} is newer than this scaler "
                           f"understands ({SCHEMA_VERSION}); upgrade scaler")
    while doc["schema_version"] < SCHEMA_VERSION:
        doc = UPGRADES[doc["schema_version"]](doc)
    if not isinstance(doc["scenario"], str) or not doc["scenario"]:
        raise ResultsError(f"{file}: bad scenario {doc['scenario']!r}")
    return Run(path, doc)


def find_runs(paths: list[str]) -> list[Run]:
    """Runs named on the command line: run folders, or folders holding run folders (a suite)."""
    runs: list[Run] = []
    for name in paths:
        path = Path(name)
        if path.is_dir() and not (path / RUN_FILE).exists():
            children = sorted(p for p in path.iterdir() if (p / RUN_FILE).is_file())
            if children:
                runs.extend(load_run(p) for p in children)
                continue
        runs.append(load_run(path))
    return runs


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
