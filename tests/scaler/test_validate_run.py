"""The read boundary (scaler.validate_run): a run.json with a value a reader cannot take, or a
damaged samples file, gets the same one-line refusal naming the file and the field from every
reader (exit 2), where before some computed "inf images/s" and others crashed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.scaler.helpers import scaler_cmd

NULL = ["--engine", "null", "--min-queries", "10", "--warmup", "0.1", "--min-duration", "0.3"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A real scaling run (null engine, 2 groups) to damage, copied per test."""
    out = tmp_path_factory.mktemp("measured")
    done = scaler_cmd("scaling", "--instances", "1-2", "--placement", "pinned", *NULL,
                      "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stderr
    (folder,) = [p.parent for p in out.rglob("run.json")]
    return folder


@pytest.fixture
def run(measured, tmp_path) -> Path:
    copy = tmp_path / measured.name
    shutil.copytree(measured, copy)
    return copy


def _edit(folder: Path, change) -> None:
    doc = json.loads((folder / "run.json").read_text())
    change(doc)
    (folder / "run.json").write_text(json.dumps(doc))  # Infinity is written as JSON allows


READERS = {
    "show": lambda r, t: ["show", str(r)],
    "plot": lambda r, t: ["plot", str(r), "--out", str(t / "plots")],
    "report": lambda r, t: ["report", str(r), "--out", str(t / "report.html")],
    "export": lambda r, t: ["export", str(r), "--out", str(t / "export")],
    "capacity": lambda r, t: ["capacity", str(r), "--target-ips", "100",
                              "--latency-bound-ms", "100"],
    "compare": lambda r, t: ["compare", str(r), str(r)],
    "simulate": lambda r, t: ["simulate", str(r), "--machine", "1s2c1t", "--instances", "1",
                              "--queries", "1000", "--out", str(t / "sim")],
}


def _refused(args: list[str]) -> str:
    done = scaler_cmd(*args, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_an_infinite_figure_alike(run, tmp_path, reader):
    _edit(run, lambda d: d["points"][0].update(throughput_ips=float("inf")))
    line = _refused(READERS[reader](run, tmp_path))
    assert line == (f"scaler: error: {run / 'run.json'}: points[0].throughput_ips should be "
                    "a finite number >= 0, not Infinity")


@pytest.mark.parametrize("field,value,should", [
    ("instances", "two", "a whole number >= 1, not 'two'"),
    ("throughput_ips", "fast", "a finite number >= 0, not 'fast'"),
    ("throughput_ips", -3.0, "a finite number >= 0, not -3.0"),
    ("noisy", "yes", "true or false, not 'yes'"),
])
def test_wrong_types_and_ranges_name_the_field(run, tmp_path, field, value, should):
    _edit(run, lambda d: d["groups"][1].update({field: value}))
    for reader in ("show", "capacity"):
        line = _refused(READERS[reader](run, tmp_path))
        assert line == f"scaler: error: {run / 'run.json'}: groups[1].{field} should be {should}"


def test_nan_latency_and_a_bad_status_are_refused(run, tmp_path):
    _edit(run, lambda d: d["groups"][0]["latency_ms"].update(p99=float("nan")))
    assert _refused(READERS["show"](run, tmp_path)).endswith(
        "groups[0].latency_ms.p99 should be a finite number, not NaN")
    _edit(run, lambda d: (d["groups"][0]["latency_ms"].update(p99=1.0),
                          d.update(status="done")))
    assert _refused(READERS["show"](run, tmp_path)).endswith(
        "status should be one of running, complete, partial, not 'done'")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _to_dev_zero(path: Path) -> None:
    path.unlink()
    os.symlink("/dev/zero", path)


def _short(path: Path) -> None:
    import numpy as np

    with np.load(path) as data:
        arrays = {k: data[k][:-1] for k in data.files}
    path.unlink()
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("damage,says", [
    (Path.unlink, "missing (group 1 recorded"),
    (_truncate, "not a readable samples file"),
    (lambda p: p.write_bytes(os.urandom(4096)), "not a readable samples file"),
    (_to_dev_zero, "a symbolic link, not a samples file scaler wrote"),
    (_short, "samples, the run recorded"),
])
def test_damaged_samples_are_named_by_the_readers_that_need_them(run, tmp_path, damage, says):
    target = run / "samples" / "g1.npz"
    damage(target)
    line = _refused(READERS["export"](run, tmp_path))
    assert line.startswith(f"scaler: error: {target}: ") and says in line, line
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())
    if damage not in (Path.unlink, _truncate):
        return  # the report and show checks below: twice is enough (they cost a process)
    # the report draws what it can and refuses the latency figures, naming the file
    done = scaler_cmd(*READERS["report"](run, tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    warned = [x for x in done.stderr.splitlines() if "latency" in x and str(target) in x]
    assert len(warned) == 1 and says in warned[0], done.stderr
    # show needs no samples: it still reads the run
    assert scaler_cmd("show", str(run), timeout=60).returncode == 0


def test_an_intact_run_reads_everywhere(run, tmp_path):
    for reader in ("show", "export", "compare"):
        done = scaler_cmd(*READERS[reader](run, tmp_path), timeout=120)
        assert done.returncode == 0, (reader, done.stderr)
