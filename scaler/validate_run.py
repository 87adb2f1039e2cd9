"""The read boundary of a run folder: every value a reader interprets is checked once, where
the run is read, and anything else is one refusal naming the file and the field.

``check(doc, file)`` checks a run document (after its upgrades): types and ranges per field,
numbers finite where a figure is expected (JSON's ``Infinity`` and ``NaN`` are not
figures). ``group_samples(folder, group)`` reads one group's raw samples
(``samples/gN.npz``, or a schema-1 ``samples.npz``) and checks them against the record: a
missing, truncated, foreign or special file (a symlink, a device) or arrays of the wrong
length are a :class:`~scaler.results.ResultsError` naming the file. Every reader goes
through ``scaler.results.load_run`` and these, so show, plot, report, export, capacity,
compare and simulate refuse alike (exit 2). Kept apart from ``results`` so a typed run record
can absorb it.
"""

from __future__ import annotations

import math
import os
import stat as stat_mod
from collections.abc import Callable
from pathlib import Path
from typing import Any

Check = Callable[[Any], str | None]  # None when the value is fine, else what it should be

STATUSES = ("running", "complete", "partial")
MAX_SAMPLES_BYTES = 8 << 30  # a samples file larger than this is not one we wrote


def _number(low: float | None = None, high: float | None = None, above: bool = False,
            integer: bool = False) -> Check:
    """A finite number (an integer when asked) within bounds; ``above``: strictly above
    ``low``."""
    kind = "a whole number" if integer else "a finite number"
    if low is not None:
        kind += f" {'>' if above else '>='} {low:g}"
    if high is not None:
        kind += f" <= {high:g}"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return kind
        if integer and not isinstance(value, int):
            return kind
        if not math.isfinite(value):
            return kind
        if low is not None and (value <= low if above else value < low):
            return kind
        if high is not None and value > high:
            return kind
        return None

    return check


def _kind(kind: type | tuple[type, ...], name: str) -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, kind) and not (
            kind is not bool and isinstance(value, bool)) else name

    return check


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(choices)

    return check


def _list_of(item: Check, length: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            return f"a list of {length} values" if length is not None else "a list"
        for v in value:
            if v is not None and item(v) is not None:
                return f"a list of {item(v)}"
        return None

    return check


FIGURE = _number(0)
LATENCY = _number()  # finite; the server scenario has recorded a negative min (see notes)
COUNT = _number(0, integer=True)
POSITIVE_INT = _number(1, integer=True)
TEXT = _kind(str, "a string")
FLAG = _kind(bool, "true or false")
OBJECT = _kind(dict, "an object")
LIST = _kind(list, "a list")

# field -> check; a field may be absent or null unless listed in REQUIRED_*
TOP: dict[str, Check] = {"status": _one_of(*STATUSES), "scenario": TEXT}
EFFECTIVE: dict[str, Check] = {"engine": TEXT, "precision": TEXT, "model": TEXT}
REQUESTED: dict[str, Check] = {
    "repeat": POSITIVE_INT, "batch": POSITIVE_INT, "latency_bound_ms": _number(0, above=True),
    "stat": TEXT, "instances": _list_of(POSITIVE_INT), "min_duration_s": FIGURE,
    "min_queries": COUNT, "target_qps": _number(0, above=True), "max_batch": POSITIVE_INT,
}
COMMON: dict[str, Check] = {  # a group's and a point's
    "placement": TEXT, "instances": POSITIVE_INT, "batch": POSITIVE_INT,
    "throughput_ips": FIGURE, "others_cpu_share": FIGURE, "noisy": FLAG, "emulated": FLAG,
    "oversubscribed": FLAG, "target_qps": _number(0, above=True), "achieved_qps": FIGURE,
    "engine": TEXT, "precision": TEXT, "model": TEXT, "latency_ms": OBJECT,
}
GROUP: dict[str, Check] = {
    **COMMON, "id": COUNT, "repeat": COUNT, "status": TEXT, "queries": COUNT,
    "wall_s": FIGURE, "per_instance": LIST, "errors": LIST, "label": TEXT,
}
POINT: dict[str, Check] = {
    **COMMON, "repeats": COUNT, "complete": COUNT, "ci95_ips": _list_of(FIGURE, 2),
    "repeats_ips": _list_of(FIGURE), "min_ips": FIGURE, "max_ips": FIGURE, "cv": FIGURE,
    "groups": _list_of(COUNT), "per_instance_ips": _list_of(FIGURE), "unstable": FLAG,
}
INSTANCE: dict[str, Check] = {"index": COUNT, "queries": COUNT, "requests": COUNT,
                              "throughput_ips": FIGURE, "threads": COUNT}
REQUIRED_GROUP = ("id", "placement", "instances")
REQUIRED_POINT = ("placement", "instances")


def check(doc: dict[str, Any], file: Path) -> None:
    """Refuse (ResultsError naming ``file`` and the field) a document a reader cannot take."""
    _fields(doc, TOP, "", file)
    for name, fields in (("effective", EFFECTIVE), ("requested", REQUESTED)):
        part = doc.get(name)
        if part is not None:
            if not isinstance(part, dict):
                _refuse(file, name, part, "an object")
            _fields(part, fields, f"{name}.", file)
    for plural, fields, required in (("groups", GROUP, REQUIRED_GROUP),
                                     ("points", POINT, REQUIRED_POINT)):
        items = doc.get(plural)
        if items is None:
            continue
        if not isinstance(items, list):
            _refuse(file, plural, items, "a list")
        for k, item in enumerate(items):
            where = f"{plural}[{k}]"
            if not isinstance(item, dict):
                _refuse(file, where, item, "an object")
            for key in required:
                if item.get(key) is None:
                    _refuse(file, f"{where}.{key}", None, fields[key](None) or "a value")
            _fields(item, fields, f"{where}.", file)
            _latency(item.get("latency_ms"), f"{where}.latency_ms", file)
            for j, inst in enumerate(item.get("per_instance") or []):
                if not isinstance(inst, dict):
                    _refuse(file, f"{where}.per_instance[{j}]", inst, "an object")
                _fields(inst, INSTANCE, f"{where}.per_instance[{j}].", file)
                _latency(inst.get("latency_ms"), f"{where}.per_instance[{j}].latency_ms",
                         file)


def _fields(part: dict[str, Any], fields: dict[str, Check], prefix: str, file: Path) -> None:
    for key, rule in fields.items():
        value = part.get(key)
        if value is None:
            continue
        should = rule(value)
        if should is not None:
            _refuse(file, prefix + key, value, should)


def _latency(lat: Any, where: str, file: Path) -> None:
    """A latency summary: every figure finite (``samples`` a count); its
    ``early_stopping`` estimates likewise."""
    if not isinstance(lat, dict):
        return
    for key, value in lat.items():
        if value is None:
            continue
        if key == "early_stopping":
            if not isinstance(value, dict):
                _refuse(file, f"{where}.{key}", value, "an object")
            _latency(value, f"{where}.{key}", file)
            continue
        rule = COUNT if key == "samples" else LATENCY
        should = rule(value)
        if should is not None:
            _refuse(file, f"{where}.{key}", value, should)


def _refuse(file: Path, field: str, value: Any, should: str) -> None:
    from scaler.results import ResultsError

    shown = "missing" if value is None else f"not {_show(value)}"
    raise ResultsError(f"{file}: {field} should be {should}, {shown}")


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    if isinstance(value, dict | list):
        return f"{'an object' if isinstance(value, dict) else 'a list'}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(text) - 57} more characters)"


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

    from scaler.results import ResultsError

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
    from scaler.results import SAMPLES_DIR, SAMPLES_FILE, ResultsError

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
    from scaler.results import ResultsError

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
