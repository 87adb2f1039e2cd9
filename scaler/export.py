"""Tidy tables of runs for pandas and notebooks: groups, points and per-query samples.

``scaler export RUN... --format csv|parquet --out FOLDER`` writes three tables, one row per

- **group** (``groups.csv``): one measured (or simulated) group, i.e. one repeat of one point,
  with its conditions (noise, emulated, oversubscribed) and status;
- **point** (``points.csv``): a figure across its repeats, as ``scaler show`` reports it
  (median throughput, 95% interval, pooled latency percentiles, noisy/unstable);
- **sample** (``samples.csv``): one query, ``start_ns``/``end_ns`` on the worker's monotonic
  clock and its latency in ms; join it to ``groups`` on ``(run, group)``.

The tables are written into a temporary folder inside ``--out`` and renamed into place
together when all are complete: a reader never sees half a table, and a failed export leaves
the folder as it was. Samples are read group by group (``group_samples``) and written as
they are read, so a null-engine run of tens of millions of queries does not need them all
in memory.
Parquet needs pyarrow; without it the CLI says ``pip install pyarrow`` (exit 2).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.results import Run
from scaler.threadreport import spin_share, stacking

FORMATS = ("csv", "parquet")
LATENCY_KEYS = ("mean", "p50", "p90", "p95", "p99", "p99.9", "max")

GROUP_COLUMNS = (
    "run", "group", "scenario", "experiment", "placement", "threading", "layout", "engine",
    "precision", "isa_cap", "model", "instances", "batch", "repeat", "status",
    "throughput_ips", "queries",
    *(f"latency_{k}_ms" for k in LATENCY_KEYS), "latency_samples", "noisy",
    "others_cpu_share", "steal_share", "emulated", "simulated", "oversubscribed", "target",
    "host", "label", "run_path", "thread_stacking", "spin_share", "run_status",
    "run_partial_reasons",
)
POINT_COLUMNS = (
    "run", "scenario", "experiment", "placement", "threading", "layout", "engine", "precision",
    "isa_cap", "model", "instances", "batch", "repeats", "complete", "throughput_ips",
    "ci95_low_ips", "ci95_high_ips", "min_ips", "max_ips", "cv", "unstable", "noisy",
    "others_cpu_share",
    *(f"latency_{k}_ms" for k in LATENCY_KEYS), "latency_samples",
    "early_stopping_p90_ms", "early_stopping_p99_ms", "emulated", "simulated",
    "oversubscribed", "groups",
)
SAMPLE_COLUMNS = ("run", "group", "instance", "start_ns", "end_ns", "latency_ms")


class PyarrowMissing(UsageError):
    """Parquet asked for without pyarrow installed."""


def run_name(run: Run) -> str:
    return run.path.name


def experiment_of(run: Run) -> str:
    """The run's experiment (its name in a suite), else its scenario."""
    return run.doc.get("requested", {}).get("experiment") or run.scenario


def check_unique(runs: list[Run]) -> None:
    seen: dict[str, Path] = {}
    for r in runs:
        other = seen.setdefault(run_name(r), r.path)
        if other != r.path:
            raise UsageError(f"two runs are named {run_name(r)} ({other} and {r.path}): "
                             "export them separately")


def _flag(value: Any) -> bool:
    return bool(value)


def group_rows(runs: list[Run]) -> Iterator[dict[str, Any]]:
    """One row per group of every run."""
    for r in runs:
        doc = r.doc
        for g in doc.get("groups", []):
            lat = g.get("latency_ms") or {}
            noise = g.get("noise") or {}
            yield {
                "run": run_name(r), "group": g.get("id"), "scenario": r.scenario,
                "experiment": experiment_of(r), "placement": g.get("placement"),
                "threading": g.get("threading") or "tuned", "layout": g.get("layout"),
                "engine": g.get("engine"),
                "precision": g.get("precision"), "isa_cap": g.get("isa_cap", "native"),
                "model": g.get("model"),
                "instances": g.get("instances"), "batch": g.get("batch"),
                "repeat": g.get("repeat", 0), "status": g.get("status"),
                "throughput_ips": g.get("throughput_ips"), "queries": g.get("queries"),
                **{f"latency_{k}_ms": lat.get(k) for k in LATENCY_KEYS},
                "latency_samples": lat.get("samples"),
                "noisy": _flag(g.get("noisy")), "others_cpu_share": g.get("others_cpu_share"),
                "steal_share": noise.get("steal_share"),
                "emulated": _flag(g.get("emulated") or doc.get("emulated")),
                "simulated": _flag(g.get("simulated") or doc.get("simulated")),
                "oversubscribed": _flag(g.get("oversubscribed")), "target": g.get("target"),
                "host": doc.get("host", {}).get("hostname"), "label": g.get("label"),
                "run_path": str(r.path),
                "thread_stacking": stacking(g.get("per_instance") or [])["kind"],
                "spin_share": spin_share(g.get("per_instance") or []),
                "run_status": doc.get("status"),
                "run_partial_reasons": "; ".join(map(str, doc.get("partial_reasons") or [])),
            }


def point_rows(runs: list[Run]) -> Iterator[dict[str, Any]]:
    """One row per point (a figure across its repeats) of every run."""
    from scaler.summaries import doc_points

    for r in runs:
        for p in doc_points(r.doc):
            lat = p.get("latency_ms") or {}
            early = lat.get("early_stopping") or {}
            ci = p.get("ci95_ips") or [None, None]
            yield {
                "run": run_name(r), "scenario": r.scenario, "experiment": experiment_of(r),
                "threading": p.get("threading") or "tuned",
                **{k: p.get(k) for k in ("placement", "layout", "engine", "precision",
                                         "model", "instances", "batch", "repeats",
                                         "complete", "throughput_ips")},
                "isa_cap": p.get("isa_cap", "native"),
                "ci95_low_ips": ci[0], "ci95_high_ips": ci[1],
                **{k: p.get(k) for k in ("min_ips", "max_ips", "cv", "others_cpu_share")},
                "unstable": _flag(p.get("unstable")), "noisy": _flag(p.get("noisy")),
                **{f"latency_{k}_ms": lat.get(k) for k in LATENCY_KEYS},
                "latency_samples": lat.get("samples"),
                "early_stopping_p90_ms": early.get("p90"),
                "early_stopping_p99_ms": early.get("p99"),
                "emulated": _flag(p.get("emulated") or r.doc.get("emulated")),
                "simulated": _flag(p.get("simulated") or r.doc.get("simulated")),
                "oversubscribed": _flag(p.get("oversubscribed")),
                "groups": " ".join(str(g) for g in p.get("groups", [])),
            }


def group_samples(run: Run, group: int) -> dict[int, tuple[Any, Any]]:
    """The raw samples of one group: instance -> (start_ns, end_ns) int64 arrays, checked
    against the group's record (``scaler.validate_run.group_samples``: a missing, damaged or
    short file is a ResultsError naming it). Empty for a group without samples."""
    from scaler.validate_run import group_samples as read

    record = next((g for g in run.doc.get("groups", []) if g.get("id") == group), {"id": group})
    return read(run.path, record)


def sample_chunks(runs: list[Run]) -> Iterator[dict[str, Any]]:
    """Column arrays of the samples table, one chunk per group and instance (``run`` is
    the one run name of the chunk)."""
    import numpy as np

    for r in runs:
        for g in r.doc.get("groups", []):
            if g.get("id") is None:
                continue
            for instance, (start, end) in group_samples(r, g["id"]).items():
                n = len(start)
                if n == 0:
                    continue
                yield {"run": run_name(r), "group": np.full(n, g["id"], np.int64),
                       "instance": np.full(n, instance, np.int64),
                       "start_ns": start, "end_ns": end,
                       "latency_ms": (end - start) / 1e6}


# -- writing -------------------------------------------------------------------------------


def _synced(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _csv_value(v: Any) -> Any:
    return "" if v is None else v


def _write_csv_rows(path: Path, columns: tuple[str, ...], rows: Iterator[dict[str, Any]]
                    ) -> int:
    count = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow([_csv_value(row.get(c)) for c in columns])
            count += 1
    _synced(path)
    return count


def _csv_field(text: str) -> str:
    """A text field as the csv module would quote it."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv_chunks(path: Path, chunks: Iterator[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w", newline="") as f:
        f.write(",".join(SAMPLE_COLUMNS) + "\n")
        for c in chunks:
            head = f"{_csv_field(c['run'])},{int(c['group'][0])},{int(c['instance'][0])},"
            f.writelines(f"{head}{s},{e},{m!r}\n" for s, e, m in zip(
                c["start_ns"].tolist(), c["end_ns"].tolist(), c["latency_ms"].tolist()))
            count += len(c["start_ns"])
    _synced(path)
    return count


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise PyarrowMissing("--format parquet needs pyarrow: pip install pyarrow "
                             "(or use --format csv)") from None
    return pyarrow


def check_parquet() -> None:
    """Refuse parquet, saying what to install, when pyarrow is missing."""
    _pyarrow()


INT_COLUMNS = {"group", "instances", "batch", "repeat", "queries", "latency_samples",
               "repeats", "complete"}
BOOL_COLUMNS = {"noisy", "unstable", "emulated", "simulated", "oversubscribed"}
FLOAT_COLUMNS = {"throughput_ips", "others_cpu_share", "steal_share", "ci95_low_ips",
                 "ci95_high_ips", "min_ips", "max_ips", "cv", "early_stopping_p90_ms",
                 "early_stopping_p99_ms", *(f"latency_{k}_ms" for k in LATENCY_KEYS)}


def _arrow_schema(pa: Any, columns: tuple[str, ...]) -> Any:
    """The same column types whatever the values (a notebook can concatenate exports)."""
    def kind(c: str) -> Any:
        if c in INT_COLUMNS:
            return pa.int64()
        if c in BOOL_COLUMNS:
            return pa.bool_()
        return pa.float64() if c in FLOAT_COLUMNS else pa.string()

    return pa.schema([pa.field(c, kind(c)) for c in columns])


def _write_parquet_rows(path: Path, columns: tuple[str, ...], rows: Iterator[dict[str, Any]]
                        ) -> int:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    listed = list(rows)
    schema = _arrow_schema(pa, columns)
    data = {}
    for f in schema:
        values = [r.get(f.name) for r in listed]
        if pa.types.is_string(f.type):
            values = [None if v is None else str(v) for v in values]
        elif pa.types.is_floating(f.type):
            values = [None if v is None else float(v) for v in values]
        data[f.name] = pa.array(values, type=f.type)
    pq.write_table(pa.table(data, schema=schema), path)
    _synced(path)
    return len(listed)


def _write_parquet_chunks(path: Path, chunks: Iterator[dict[str, Any]]) -> int:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([("run", pa.string()), ("group", pa.int64()), ("instance", pa.int64()),
                        ("start_ns", pa.int64()), ("end_ns", pa.int64()),
                        ("latency_ms", pa.float64())])
    count = 0
    with pq.ParquetWriter(path, schema) as w:
        for c in chunks:
            n = len(c["start_ns"])
            columns = {**c, "run": [c["run"]] * n}
            w.write_table(pa.table({k: pa.array(columns[k], type=schema.field(k).type)
                                    for k in SAMPLE_COLUMNS}, schema=schema))
            count += n
        if count == 0:
            w.write_table(schema.empty_table())
    _synced(path)
    return count


def export(runs: list[Run], out: Path, fmt: str = "csv") -> dict[str, Any]:
    """Write ``groups``, ``points`` and ``samples`` tables of ``runs`` into the folder ``out``
    (created if needed); returns ``{table: {"path", "rows"}}``.

    All three are written into a temporary folder inside ``out`` first and renamed into
    place only when all are complete, so a failed export (a corrupt samples file, a full
    disk, Ctrl-C) leaves ``out`` as it was."""
    import shutil

    from scaler.runfolders import check_output_dir

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose from {', '.join(FORMATS)}")
    if not runs:
        raise UsageError("no runs to export")
    check_unique(runs)
    if fmt == "parquet":
        check_parquet()  # refuse before writing anything
    folder = check_output_dir(out)
    staging = folder / f".export-{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    rows_writer = _write_csv_rows if fmt == "csv" else _write_parquet_rows
    chunk_writer = _write_csv_chunks if fmt == "csv" else _write_parquet_chunks
    counts: dict[str, int] = {}
    try:
        for name, columns, rows in (("groups", GROUP_COLUMNS, group_rows(runs)),
                                    ("points", POINT_COLUMNS, point_rows(runs))):
            counts[name] = rows_writer(staging / f"{name}.{fmt}", columns, rows)
        counts["samples"] = chunk_writer(staging / f"samples.{fmt}", sample_chunks(runs))
        written = {}
        for name, rows in counts.items():
            path = folder / f"{name}.{fmt}"
            os.replace(staging / path.name, path)
            written[name] = {"path": str(path), "rows": rows}
        _fsync_dir(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
