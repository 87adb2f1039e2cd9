"""The converted-model cache: a second run must not convert again, a crash must not poison it.

An entry is either one file (a ``.tflite`` model) or a folder of files (an OpenVINO IR:
``model.xml`` + ``model.bin``), plus a sidecar ``.json`` beside it holding the size and
sha256 of every file and how the entry was made. An entry counts only if the sidecar matches
its files, so a file cut short by a crash, damaged later, missing or added is detected and
the entry rebuilt. Entries are built under a temporary name, fsynced and renamed into place
(a folder entry is renamed as a whole); the sidecar is written last. Building happens under
an exclusive ``flock`` on a per-entry lock file, re-checking the entry once the lock is held,
so workers that start together convert once and the others wait and then hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def cache_root(cache_dir: str | None) -> Path:
    """``cache_dir``, else ``$SCALER_CACHE_DIR``, else ``$XDG_CACHE_HOME/scaler``, else
    ``~/.cache/scaler``."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("SCALER_CACHE_DIR"):
        return Path(os.environ["SCALER_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "scaler"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """A hash of a file, or of a folder's relative file names and contents (a SavedModel)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_entry(path: Path) -> dict[str, Any] | None:
    """The sidecar of a valid entry, or None if missing, incomplete or damaged."""
    try:
        meta = json.loads(sidecar(path).read_text())
        if "files" in meta:  # a folder entry: exactly these files, each of this size and hash
            files = meta["files"]
            present = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            if not path.is_dir() or present != sorted(files):
                return None
            for name, expected in files.items():
                if _described(path / name) != expected:
                    return None
            return meta
        if not path.is_file() or {k: meta[k] for k in ("size", "sha256")} != _described(path):
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def get_or_build(path: Path, build: Callable[[Path], dict[str, Any]],
                 folder: bool = False) -> tuple[dict[str, Any], str]:
    """The entry at ``path`` and how it was obtained: ``hit``, ``miss`` or ``rebuilt``.

    ``build(tmp)`` writes the model to ``tmp`` (a file; with ``folder``, an existing empty
    folder to fill) and returns metadata for the sidecar, which gains ``size`` and
    ``sha256`` (a file entry) or ``files``: name -> size and sha256 (a folder entry).
    ``rebuilt`` means a damaged entry was replaced.
    """
    meta = read_entry(path)
    if meta is not None:
        return meta, "hit"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        meta = read_entry(path)
        if meta is not None:  # another process built it while we waited for the lock
            return meta, "hit"
        outcome = "rebuilt" if path.exists() or sidecar(path).exists() else "miss"
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a crashed build
            _remove(stale)
        sidecar(path).unlink(missing_ok=True)  # from here on the old entry is invalid
        built: dict[str, Any] = {}
        if folder:
            _build_folder(path, lambda tmp: built.update(build(tmp)))
            built["files"] = {str(p.relative_to(path)): _described(p)
                              for p in sorted(path.rglob("*")) if p.is_file()}
        else:
            _write_atomically(path, lambda tmp: built.update(build(tmp)))
            built.update(_described(path))
        text = json.dumps(built, indent=1, sort_keys=True)
        _write_atomically(sidecar(path), lambda tmp: tmp.write_text(text))
        _fsync(path.parent)
        return built, outcome


def _described(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a unique name beside ``path``, fsync, then rename over ``path``."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache folder may be shared by a team
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _build_folder(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` into a unique folder beside ``path``, fsync its files, then put it in
    place of ``path`` (a damaged folder there is removed first: we hold the lock)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a cache folder may be shared by a team
        write(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                os.chmod(file, 0o644)
                _fsync(file)
        _fsync(tmp)
        if path.exists() or path.is_symlink():
            _remove(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
