"""The read boundary of a run folder: every value a reader interprets is checked once, where
the run is read, and anything else is one refusal naming the file and the field.

``check(doc, file)`` reads a run document (after its upgrades) into its typed record
(``scaler.schema``, which holds the rules: types and ranges per field, numbers finite where a
figure is expected; JSON's ``Infinity`` and ``NaN`` are not figures).
``group_samples(folder, group)`` reads one group's raw samples (``samples/gN.npz``, or a
schema-1 ``samples.npz``) and checks them against the record: a missing, truncated, foreign
or special file (a symlink, a device) or arrays of the wrong length are a
:class:`~scaler.results.ResultsError` naming the file. Every reader goes through
``scaler.results.load_run`` and these, so show, plot, report, export, capacity, compare and
simulate refuse alike (exit 2).
"""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path
from typing import Any

from scaler.errors import ResultsError
from scaler.schema import FieldError, Run

MAX_SAMPLES_BYTES = 8 << 30  # a samples file larger than this is not one we wrote


def check(doc: dict[str, Any], file: Path) -> Run:
    """The typed record of ``doc`` (``scaler.schema``: types, ranges, finite figures); a
    ResultsError naming ``file`` and the field for a document a reader cannot take."""
    try:
        return Run.from_dict(doc)
    except FieldError as exc:
        raise refusal(exc, file) from None


def refusal(exc: FieldError, file: Path) -> ResultsError:
    """A field's error as the one-line refusal of the file holding it."""
    return ResultsError(f"{file}: {exc.message()}")


# -- samples ---------------------------------------------------------------------------------

def expected_counts(group: dict[str, Any]) -> dict[int, int]:
    """Instance -> how many samples the group's record says were kept (queries of a closed
    loop, requests served of the server scenario); instances that record none expect none."""
    out: dict[int, int] = {}
    for inst in group.get("per_instance") or []:
        count = inst.get("queries", inst.get("requests"))
        if isinstance(inst.get("index"), int) and isinstance(count, int) and count > 0:
            out[inst["index"]] = count
    return out


def load_samples_file(path: Path) -> dict[str, Any]:
    """Every array of one samples file, as int64; ResultsError naming the file when it is not
    a regular file of ours or cannot be read (truncated, not a zip, foreign)."""
    import numpy as np

    _regular(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k], np.int64) for k in data.files}
    except Exception as exc:  # zipfile, zlib, numpy: all "unreadable"
        if isinstance(exc, MemoryError):
            raise
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ResultsError(f"{path}: not a readable samples file ({text})") from None


def group_samples(folder: Path, group: dict[str, Any]) -> dict[int, tuple[Any, Any]]:
    """One group's raw samples, instance -> (start_ns, end_ns) int64 arrays, checked against
    its record. ResultsError naming the file when a file the record needs is missing, is not
    a regular file, cannot be read as a samples file, or holds arrays of the wrong length."""
    from scaler.results import SAMPLES_DIR, SAMPLES_FILE

    gid = group.get("id")
    prefix = f"g{gid}_"
    arrays: dict[str, Any] = {}
    for path in (folder / SAMPLES_DIR / f"g{gid}.npz", folder / SAMPLES_FILE):
        if os.path.lexists(path):
            arrays = {k: v for k, v in load_samples_file(path).items() if k.startswith(prefix)}
            if arrays:
                break
    check_samples(folder, [group], arrays)
    out: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        instance, _, edge = key[len(prefix) + 1:].partition("_")
        if key[len(prefix)] == "i" and instance.isdigit():
            out.setdefault(int(instance), {})[edge] = value
    return {i: (v["start_ns"], v["end_ns"]) for i, v in sorted(out.items())
            if "start_ns" in v and "end_ns" in v and len(v["start_ns"]) == len(v["end_ns"])}


def check_samples(folder: Path, groups: list[dict[str, Any]], arrays: dict[str, Any]) -> None:
    """Each group's arrays hold as many samples as its record says were kept; ResultsError
    naming the file (or the missing one) otherwise."""
    from scaler.results import SAMPLES_DIR, SAMPLES_FILE

    for group in groups:
        gid = group.get("id")
        for instance, count in sorted(expected_counts(group).items()):
            file = folder / SAMPLES_DIR / f"g{gid}.npz"
            if not file.exists() and (folder / SAMPLES_FILE).exists():
                file = folder / SAMPLES_FILE
            for edge in ("start_ns", "end_ns"):
                key = f"g{gid}_i{instance}_{edge}"
                got = arrays.get(key)
                if got is None and not os.path.lexists(file):
                    raise ResultsError(f"{file}: missing (group {gid} recorded {count} "
                                       f"queries of instance {instance})")
                if got is None:
                    raise ResultsError(f"{file}: no {key} (group {gid} recorded {count} "
                                       f"queries of instance {instance})")
                if len(got) != count:
                    raise ResultsError(f"{file}: {key} holds {len(got)} samples, the run "
                                       f"recorded {count}")


def _regular(path: Path) -> None:
    """A samples file is a regular file of a sane size (not a symlink to /dev/zero)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat_mod.S_ISLNK(st.st_mode):
        raise ResultsError(f"{path}: a symbolic link, not a samples file scaler wrote")
    if not stat_mod.S_ISREG(st.st_mode):
        raise ResultsError(f"{path}: not a regular file")
    if st.st_size > MAX_SAMPLES_BYTES:
        raise ResultsError(f"{path}: {st.st_size} bytes, larger than any samples file")
