"""Runs: a versioned ``run.json`` and raw samples (``samples/gN.npz``) saved and loaded.

A run folder is written under a temporary name and renamed into place, later saves replace
each file by an atomic rename, so a reader never sees half a run, and a save that fails (a
full or read-only folder) is a one-line error that leaves the previous save. ``load_run``
checks the schema version and the document's shape, upgrades older documents, reads it into
its typed record (``scaler.schema``: ``Run.record``) and says clearly what is wrong with a
foreign or corrupt folder, naming the file and the field. Where run folders go, how their names
are claimed and what dead writers left is swept: ``scaler.runfolders``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler import schema
from scaler.errors import ResultsError, ResultsWriteError, UsageError
from scaler.runfolders import RUN_FILE, SAMPLES_DIR, SAMPLES_FILE, TMP_SUFFIX, claim_path

# simulate/sweep.py still names these two here
from scaler.runfolders import check_output_dir as check_output_dir
from scaler.runfolders import new_run_path as new_run_path

SCHEMA_VERSION = 2  # 2: points across repeats, the noise meter per group


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


@dataclass(frozen=True)
class Run:
    """A run folder read: its document (``doc``, for readers not yet moved to the typed
    record) and its typed record (``record``: ``scaler.schema.Run``, checked on load)."""

    path: Path
    doc: dict[str, Any]

    @property
    def scenario(self) -> str:
        return self.doc["scenario"]

    @functools.cached_property
    def record(self) -> schema.Run:
        """The typed record of ``doc`` (read once); a ResultsError naming the run's file and
        the field when ``doc`` breaks a rule (a document built by hand)."""
        from scaler import validate_run

        return validate_run.check(self.doc, self.path / RUN_FILE)

    def samples(self) -> dict[str, Any]:
        """Raw per-query samples, keyed ``g{group}_i{instance}_{start|end}_ns``: every
        samples file, read with its checks, then each group's arrays checked against its
        record (``scaler.validate_run``): a file a group needs that is missing, damaged or of
        the wrong length is a ResultsError naming it."""
        from scaler.validate_run import check_samples, load_samples_file

        out: dict[str, Any] = {}
        files = [self.path / SAMPLES_FILE, *sorted((self.path / SAMPLES_DIR).glob("g*.npz"))]
        for path in files:
            if os.path.lexists(path):
                out.update(load_samples_file(path))
        check_samples(self.path, self.doc.get("groups", []), out)
        return out


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
    measured so far. A reader never sees half a file. A save the folder cannot take (full,
    read-only) is a :class:`ResultsWriteError` naming the folder; the previous save stays,
    and the space a half-written file took is given back.
    """
    doc = {"schema_version": SCHEMA_VERSION, **doc}
    text = json.dumps(doc, indent=1, default=_json_default) + "\n"  # TypeError before writing
    try:
        if not path.exists():
            tmp = path.with_name(f".{path.name}{TMP_SUFFIX}{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                _save_into(tmp, text, arrays)
                tmp.rename(path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            with contextlib.suppress(OSError):
                claim_path(path).unlink(missing_ok=True)
            _fsync_dir(path.parent)
            return path
        _save_into(path, text, arrays)
    except OSError as exc:
        kept = "keeps its previous save" if (path / RUN_FILE).is_file() else "was not written"
        raise ResultsWriteError(f"cannot save the run in {path.parent}: "
                                f"{exc.strerror or exc} ({path.name} {kept})") from None
    return path


def _save_into(folder: Path, text: str, arrays: dict[str, Any]) -> None:
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
    _write_atomically(folder / RUN_FILE, lambda f: f.write(text))
    _fsync_dir(folder)


def _write_atomically(path: Path, write: Callable[[Any], Any], binary: bool = False) -> None:
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}{os.getpid()}")
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ResultsError(f"{file}: corrupt run file ({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or "schema_version" not in doc or "scenario" not in doc:
        raise ResultsError(f"{file}: not a scaler run file (no schema_version or scenario)")
    version = doc["schema_version"]
    if type(version) is not int or version < 1:  # not isinstance: True is an int
        raise ResultsError(f"{file}: bad schema_version {version!r}")
    _check_shape(doc, file)
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{file}: schema_version {version} is newer than this scaler "
                           f"understands ({SCHEMA_VERSION}); upgrade scaler")
    from scaler import runstate, validate_run

    try:  # an upgrade reads old groups through the typed record: their fields named too
        while doc["schema_version"] < SCHEMA_VERSION:
            doc = UPGRADES[doc["schema_version"]](doc)
    except schema.FieldError as exc:
        raise validate_run.refusal(exc, file) from None
    if not isinstance(doc["scenario"], str) or not doc["scenario"]:
        raise ResultsError(f"{file}: bad scenario {doc['scenario']!r}")
    record = validate_run.check(doc, file)  # types, ranges, finite figures: field named
    seen = runstate.effective(doc, path)  # "running" by a process gone: partial, saying why
    run = Run(path, seen)
    if seen is doc:  # else its record is read again, with the status a reader sees
        run.__dict__["record"] = record
    return run


# the top of a run document: key -> the type its value must have where present
_SHAPE: dict[str, type | tuple[type, ...]] = {
    "status": str, "partial_reasons": list, "created": str, "command": list,
    "requested": dict, "effective": dict, "host": dict, "emulated": bool, "groups": list,
    "points": list, "summary": dict, "hosts": dict, "lock": dict, "vm": dict, "slurm": dict,
}


def _check_shape(doc: dict[str, Any], file: Path) -> None:
    """The document's top level and its groups have the types every reader assumes
    (checked before any upgrade touches them); ResultsError naming the first that does not.
    Every field after the upgrades: ``scaler.schema`` (``validate_run.check``)."""
    for key, kind in _SHAPE.items():
        if key in doc and not isinstance(doc[key], kind):
            raise ResultsError(f"{file}: {key} should be a {_kind_name(kind)}, not "
                               f"{type(doc[key]).__name__} (not a run this scaler wrote?)")
    for k, group in enumerate(doc.get("groups", []) if doc["schema_version"] < SCHEMA_VERSION
                              else []):  # what the upgrades read (their fields: scaler.schema)
        if not isinstance(group, dict):
            raise ResultsError(f"{file}: groups[{k}] should be an object, not "
                               f"{type(group).__name__} (not a run this scaler wrote?)")
    for key in ("topology",):
        host = doc.get("host", {})
        if key in host and not isinstance(host[key], dict):
            raise ResultsError(f"{file}: host.{key} should be an object, not "
                               f"{type(host[key]).__name__}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "true or false"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


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


def write_text_atomically(path: Path, text: str | bytes) -> None:
    """Write a file beside a run (a suite's summary, a report; bytes: a VM's kernel image in
    the cache): temporary name, fsync, rename, so a reader never sees half of it."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# the run document's own keys: never a target's record in an old run
_RUN_KEYS = frozenset({"schema_version", "scenario", "status", "writer", "partial_reasons",
                       "notes", "created", "command", "requested", "effective", "host",
                       "emulated", "groups", "points", "harness", "searches", "hosts", "lock",
                       "targets", "summary"})


def target_record(doc: dict[str, Any], placement: str) -> dict[str, Any] | None:
    """What a run recorded about the target of ``placement``'s workers (``describe()``: e.g.
    a VM's accelerator, kernel and QEMU): under ``targets`` since the placement-options
    change, at the top level under the placement's name in older runs."""
    record = (doc.get("targets") or {}).get(placement)
    if record is None and placement not in _RUN_KEYS:
        old = doc.get(placement)
        record = old if isinstance(old, dict) else None
    return record
