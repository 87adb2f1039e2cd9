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

SCHEMA_VERSION = 2  # 2: points across repeats, the noise meter per group
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.npz"  # schema 1: every group's samples in one file
SAMPLES_DIR = "samples"  # schema 2: one file per group, written once


def _upgrade_1(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had one group per point and no noise meter: each group is a point of one
    repeat, its conditions unknown (not noisy as far as anyone measured)."""
    from scaler.points import aggregate

    groups = [{**g, "repeat": g.get("repeat", 0), "noise": g.get("noise"),
               "noisy": bool(g.get("noisy")), "others_cpu_share": g.get("others_cpu_share")}
              for g in doc.get("groups", [])]
    requested = {"repeat": 1, **doc.get("requested", {})}
    return {**doc, "schema_version": 2, "requested": requested, "groups": groups,
            "points": aggregate(groups)}


# schema_version -> function upgrading a document of that version to the next one
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_1}


class ResultsError(ScalerError):
    """A run folder that cannot be read or written (bad input: exit code 2)."""

    exit_code = 2


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

        out: dict[str, Any] = {}
        files = [self.path / SAMPLES_FILE, *sorted((self.path / SAMPLES_DIR).glob("g*.npz"))]
        for path in files:
            try:
                with np.load(path) as data:
                    out.update({k: data[k] for k in data.files})
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{path}: not a readable samples file ({exc})") from None
        return out


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

    from scaler.engines.registry import version_packages

    versions = {"python": platform.python_version()}
    for package in ("scaler", "numpy", "uvloop", *version_packages()):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    from scaler.hostfacts import host_facts

    return {"hostname": platform.node(), "kernel": platform.release(),
            "machine": platform.machine(), "cpu_model": cpu_model(), "versions": versions,
            "facts": host_facts()}


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name as the kernel reports it (x86: "model name")."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith(("model name", "Model Name")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def save_run(path: Path, doc: dict[str, Any], arrays: dict[str, Any]) -> Path:
    """Save a run folder: ``run.json`` and each group's raw samples (``samples/gN.npz``).

    The first save builds the folder under a temporary name and renames it into place; later
    saves replace ``run.json`` by an atomic rename and add the samples of groups not saved
    yet (a group's samples never change once recorded), so a sweep can save after every
    group at a cost that does not grow with the run, and an interruption keeps everything
    measured so far. A reader never sees half a file.
    """
    doc = {"schema_version": SCHEMA_VERSION, **doc}
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _save_into(tmp, doc, arrays)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(path.parent)
        return path
    _save_into(path, doc, arrays)
    return path


def _save_into(folder: Path, doc: dict[str, Any], arrays: dict[str, Any]) -> None:
    import numpy as np

    samples = folder / SAMPLES_DIR
    samples.mkdir(exist_ok=True)
    by_group: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        by_group.setdefault(key.split("_", 1)[0], {})[key] = value
    for group, values in by_group.items():
        target = samples / f"{group}.npz"
        if target.exists():
            continue
        _write_atomically(target, lambda f, v=values: np.savez_compressed(f, **v), binary=True)
    _fsync_dir(samples)
    _write_atomically(folder / RUN_FILE, lambda f: (
        json.dump(doc, f, indent=1, default=_json_default), f.write("\n")))
    _fsync_dir(folder)


def _write_atomically(path: Path, write: Callable[[Any], Any], binary: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """The command as a user would type it again (``python -m scaler`` for the module)."""
    program = Path(sys.argv[0]).name
    if program == "__main__.py":
        return ["python", "-m", "scaler", *sys.argv[1:]]
    return [program, *sys.argv[1:]]


def write_text_atomically(path: Path, text: str) -> None:
    """Write a file beside a run (a suite's summary, a report): temporary name, fsync,
    rename, so a reader never sees half of it."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
