"""The converted-model cache: a second run must not convert again, a crash must not poison it.

Each entry is a ``.tflite`` file plus a sidecar ``.json`` holding its size and sha256 and
how it was made. An entry counts only if the sidecar matches the file, so a file cut short
by a crash or damaged later is detected and rebuilt. Files are written to a temporary name,
fsynced and renamed; the sidecar is written last. Building happens under an exclusive
``flock`` on a per-entry lock file, re-checking the entry once the lock is held, so workers
that start together convert once and the others wait and then hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
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


def read_entry(path: Path) -> dict[str, Any] | None:
    """The sidecar of a valid entry, or None if missing, incomplete or damaged."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta["size"] != path.stat().st_size or meta["sha256"] != sha256_file(path):
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def get_or_build(path: Path, build: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The entry at ``path`` and how it was obtained: ``hit``, ``miss`` or ``rebuilt``.

    ``build(tmp)`` writes the model to ``tmp`` and returns metadata for the sidecar. The
    sidecar gains ``size`` and ``sha256``. ``rebuilt`` means a damaged entry was replaced.
    """
    meta = read_entry(path)
    if meta is not None:
        return meta, "hit"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        meta = read_entry(path)
        if meta is not None:  # another process built it while we waited for the lock
            return meta, "hit"
        outcome = "rebuilt" if path.exists() else "miss"
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a crashed build
            stale.unlink(missing_ok=True)
        built: dict[str, Any] = {}
        _write_atomically(path, lambda tmp: built.update(build(tmp)))
        built.update(size=path.stat().st_size, sha256=sha256_file(path))
        text = json.dumps(built, indent=1, sort_keys=True)
        _write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
        _fsync(path.parent)
        return built, outcome


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
