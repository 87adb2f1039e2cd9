"""Whether a run is still being written, and what a run that could not record its end was.

A run is saved ``running`` after every group and ``complete`` or ``partial`` at its end. A
coordinator that cannot record its end (SIGKILL, a crash, the machine's power) leaves
``running`` behind for ever; so does one whose last save failed (a full or read-only
folder). :func:`effective` is the one place every reader (show, plot, report, export,
capacity, compare, simulate, through ``results.load_run``) learns what such a run is:
``partial`` with the reason, ``coordinator gone`` or the save that failed. A failed save is
remembered outside the run folder (which could not take it) in the cache folder, by
:func:`record_failed_save`. :func:`correct_stale` rewrites such runs' files when a later
command writes into their folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

GONE = "coordinator gone"
FAILED_SAVE_DIR = "failed-saves"  # under the cache root: one small file per run folder


def writer_gone(doc: dict[str, Any]) -> bool:
    """True when the process that wrote a running run is no longer alive (same machine and
    boot only: elsewhere nothing can be told)."""
    from scaler.hostfacts import boot_id

    w = doc.get("writer")
    if not isinstance(w, dict) or not w.get("pid") or w.get(
            "hostname") != platform.node() or w.get("boot_id") != boot_id():
        return False
    try:
        with open(f"/proc/{int(w['pid'])}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, TypeError, OverflowError):
        return True  # no such process
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    started = w.get("started")
    return isinstance(started, int) and int(fields[19]) != started  # pid reused


def stale_reason(doc: dict[str, Any], folder: Path | None) -> str | None:
    """Why a run saved ``running`` is not: its coordinator is gone (with the save that
    failed, when one did); None while it runs (or when nothing can be told)."""
    if doc.get("status") != "running" or not writer_gone(doc):
        return None
    pid = doc["writer"].get("pid")
    failed = failed_save(folder, doc["writer"]) if folder is not None else None
    if failed:
        return f"{GONE} (pid {pid}) after its last save failed: {failed}"
    return f"{GONE} (pid {pid}): killed or crashed before it recorded its end"


def effective(doc: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """The document as every reader takes it: a run whose coordinator is gone reads
    ``partial`` with the reason (the saved summary too). Returns ``doc`` itself when
    nothing changes."""
    reason = stale_reason(doc, folder)
    if reason is None:
        return doc
    reasons = [*(doc.get("partial_reasons") or []), reason]
    out = {**doc, "status": "partial", "partial_reasons": reasons, "stale": True}
    if isinstance(doc.get("summary"), dict):
        out["summary"] = {**doc["summary"], "status": "partial", "partial_reasons": reasons}
    return out


# -- failed saves ----------------------------------------------------------------------------

def _record_path(folder: Path) -> Path:
    from scaler.engines.cache import cache_root

    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
    return cache_root(None) / FAILED_SAVE_DIR / f"{key}.json"


def record_failed_save(folder: Path, reason: str) -> None:
    """Remember, outside the run folder, why this process's save of ``folder`` failed: a
    reader then says so instead of blaming a kill. Best effort (nothing to do if the cache
    folder cannot take it either)."""
    from scaler.session import writer

    with contextlib.suppress(OSError, ValueError):
        path = _record_path(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"folder": str(folder), "reason": reason,
                                   "writer": writer()}))
        os.replace(tmp, path)


def failed_save(folder: Path, writer: dict[str, Any]) -> str | None:
    """The reason recorded for a failed save of ``folder`` by that writer, if any."""
    try:
        rec = json.loads(_record_path(folder).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("writer"), dict):
        return None
    same = all(rec["writer"].get(k) == writer.get(k) for k in ("pid", "started", "boot_id"))
    reason = rec.get("reason")
    return " ".join(reason.split())[:300] if same and isinstance(reason, str) else None


def forget_failed_save(folder: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        _record_path(folder).unlink(missing_ok=True)


# -- correcting the files --------------------------------------------------------------------

def correct_stale(out: Path, _depth: int = 2) -> list[Path]:
    """Rewrite the run.json of runs in ``out`` (a run folder, or a folder of runs and
    suites) whose coordinator is gone: ``partial`` with the reason, atomically. Runs that
    cannot be read or written are left as they are. Returns the folders corrected."""
    from scaler.results import RUN_FILE

    corrected: list[Path] = []
    if (out / RUN_FILE).is_file():
        return [out] if _correct(out) else []
    if _depth <= 0:
        return corrected
    try:
        entries = sorted(out.iterdir())
    except OSError:
        return corrected
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        corrected += correct_stale(entry, _depth - 1)
    return corrected


def _correct(folder: Path) -> bool:
    from scaler.results import RUN_FILE, write_text_atomically

    file = folder / RUN_FILE
    try:
        with open(file, "rb") as f:  # saved with its status near the top: most runs end here
            if b'"status": "running"' not in f.read(4096):
                return False
        if file.stat().st_size > 256 << 20:
            return False
        doc = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(doc, dict):
        return False
    fixed = effective(doc, folder)
    if fixed is doc:
        return False
    fixed.pop("stale", None)
    try:
        write_text_atomically(file, json.dumps(fixed, indent=1) + "\n")
    except OSError:
        return False
    forget_failed_save(folder)
    return True
