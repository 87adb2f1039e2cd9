"""``scaler.export`` in this process on hand-made runs: every column of every table holds the
value the test put in ``run.json`` or in the ``.npz`` files it wrote, and each refusal says
what it promises. (tests/scaler/test_export.py runs the CLI on real runs.)"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scaler import export
from scaler.errors import UsageError
from scaler.results import ResultsError, Run

LAT = {"mean": 1.5, "p50": 1.25, "p90": 2.5, "p95": 3.5, "p99": 4.5, "p99.9": 5.5, "max": 6.5,
       "samples": 77}
FULL_GROUP = {"id": 0, "placement": "pinned", "layout": "pinned-2x1", "engine": "tf",
              "precision": "int8", "model": "tiny", "instances": 2, "batch": 4, "repeat": 1,
              "status": "complete", "throughput_ips": 123.5, "queries": 77, "latency_ms": LAT,
              "noisy": True, "others_cpu_share": 0.07, "noise": {"steal_share": 0.01},
              "emulated": True, "oversubscribed": True, "target": "local",
              "label": "pinned x2 b4"}
POINT = {"placement": "pinned", "layout": "pinned-2x1", "engine": "tf", "precision": "int8",
         "model": "tiny", "instances": 2, "batch": 4, "repeats": 3, "complete": 3,
         "throughput_ips": 120.0, "ci95_ips": [110.0, 130.0], "min_ips": 100.0,
         "max_ips": 140.0, "cv": 0.05, "others_cpu_share": 0.02, "unstable": True,
         "noisy": False, "latency_ms": {**LAT, "early_stopping": {"p90": 2.75, "p99": 4.75}},
         "oversubscribed": True, "groups": [0, 1]}


def hand_run(tmp_path, name="latency-a", schema=2, experiment="lat-x"):
    path = tmp_path / name
    (path / "samples").mkdir(parents=True)
    doc = {"scenario": "latency", "requested": {"experiment": experiment},
           "host": {"hostname": "box"}, "simulated": True,
           "groups": [FULL_GROUP, {"id": 1}, {"placement": "no id"}], "points": [POINT, {}]}
    arrays = {"g0_i0_start_ns": np.array([1000, 5000]), "g0_i0_end_ns": np.array([3000, 9000]),
              "g0_i1_start_ns": np.array([7]), "g0_i1_end_ns": np.array([8, 9]),  # mismatched
              "g0_i2_start_ns": np.array([1])}  # no end
    if schema == 2:
        np.savez(path / "samples" / "g0.npz", **arrays)
        np.savez(path / "samples" / "g1.npz", g1_i0_start_ns=np.array([], np.int64),
                 g1_i0_end_ns=np.array([], np.int64))
    else:
        np.savez(path / "samples.npz", **arrays, g1_i3_start_ns=np.array([10]),
                 g1_i3_end_ns=np.array([15]))
    (path / "run.json").write_text(json.dumps(doc))
    return Run(path, doc)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_group_and_point_column_holds_the_hand_made_value(tmp_path):
    run = hand_run(tmp_path)
    written = export.export([run], tmp_path / "out")
    assert written == {name: {"path": str(tmp_path / "out" / f"{name}.csv"), "rows": rows}
                       for name, rows in (("groups", 3), ("points", 2), ("samples", 2))}
    groups = read_csv(tmp_path / "out" / "groups.csv")
    assert list(groups[0]) == list(export.GROUP_COLUMNS)
    assert groups[0] == {
        "run": "latency-a", "group": "0", "scenario": "latency", "experiment": "lat-x",
        "placement": "pinned", "layout": "pinned-2x1", "engine": "tf", "precision": "int8",
        "model": "tiny", "instances": "2", "batch": "4", "repeat": "1", "status": "complete",
        "throughput_ips": "123.5", "queries": "77", "latency_mean_ms": "1.5",
        "latency_p50_ms": "1.25", "latency_p90_ms": "2.5", "latency_p95_ms": "3.5",
        "latency_p99_ms": "4.5", "latency_p99.9_ms": "5.5", "latency_max_ms": "6.5",
        "latency_samples": "77", "noisy": "True", "others_cpu_share": "0.07",
        "steal_share": "0.01", "emulated": "True", "simulated": "True",
        "oversubscribed": "True", "target": "local", "host": "box", "label": "pinned x2 b4",
        "run_path": str(run.path),
        # a run from before --threading and --isa: tuned, native; no thread read-back
        "threading": "tuned", "isa_cap": "native", "thread_stacking": "unknown",
        "spin_share": "", "run_status": "", "run_partial_reasons": ""}
    empty = {c: "" for c in export.GROUP_COLUMNS}
    assert groups[1] == {**empty, "run": "latency-a", "group": "1", "scenario": "latency",
                         "experiment": "lat-x", "repeat": "0", "noisy": "False",
                         "emulated": "False", "simulated": "True", "oversubscribed": "False",
                         "host": "box", "run_path": str(run.path), "threading": "tuned",
                         "isa_cap": "native", "thread_stacking": "unknown"}
    points = read_csv(tmp_path / "out" / "points.csv")
    assert list(points[0]) == list(export.POINT_COLUMNS)
    assert points[0] == {
        "run": "latency-a", "scenario": "latency", "experiment": "lat-x",
        "placement": "pinned", "layout": "pinned-2x1", "engine": "tf", "precision": "int8",
        "model": "tiny", "instances": "2", "batch": "4", "repeats": "3", "complete": "3",
        "throughput_ips": "120.0", "ci95_low_ips": "110.0", "ci95_high_ips": "130.0",
        "min_ips": "100.0", "max_ips": "140.0", "cv": "0.05", "unstable": "True",
        "noisy": "False", "others_cpu_share": "0.02", "latency_mean_ms": "1.5",
        "latency_p50_ms": "1.25", "latency_p90_ms": "2.5", "latency_p95_ms": "3.5",
        "latency_p99_ms": "4.5", "latency_p99.9_ms": "5.5", "latency_max_ms": "6.5",
        "latency_samples": "77", "early_stopping_p90_ms": "2.75",
        "early_stopping_p99_ms": "4.75", "emulated": "False", "simulated": "True",
        "oversubscribed": "True", "groups": "0 1", "threading": "tuned", "isa_cap": "native"}
    assert points[1] == {**{c: "" for c in export.POINT_COLUMNS}, "run": "latency-a",
                         "scenario": "latency", "experiment": "lat-x", "unstable": "False",
                         "noisy": "False", "emulated": "False", "simulated": "True",
                         "oversubscribed": "False", "threading": "tuned", "isa_cap": "native"}
    samples = read_csv(tmp_path / "out" / "samples.csv")
    assert samples == [
        {"run": "latency-a", "group": "0", "instance": "0", "start_ns": "1000",
         "end_ns": "3000", "latency_ms": "0.002"},
        {"run": "latency-a", "group": "0", "instance": "0", "start_ns": "5000",
         "end_ns": "9000", "latency_ms": "0.004"}]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "groups.csv", "points.csv", "samples.csv"]


def test_schema_one_samples_and_names_that_need_quoting(tmp_path):
    a = hand_run(tmp_path, 'odd,"name"', schema=1, experiment="")
    b = hand_run(tmp_path, "plain", schema=2)
    written = export.export([a, b], tmp_path / "out")
    assert written["samples"]["rows"] == 3 + 2
    samples = read_csv(tmp_path / "out" / "samples.csv")
    assert [(s["run"], s["group"], s["instance"], s["latency_ms"]) for s in samples] == [
        ('odd,"name"', "0", "0", "0.002"), ('odd,"name"', "0", "0", "0.004"),
        ('odd,"name"', "1", "3", "5e-06"), ("plain", "0", "0", "0.002"),
        ("plain", "0", "0", "0.004")]
    groups = read_csv(tmp_path / "out" / "groups.csv")
    assert {g["experiment"] for g in groups if g["run"] == 'odd,"name"'} == {"latency"}


def test_group_samples_reads_only_that_groups_complete_arrays(tmp_path):
    run = hand_run(tmp_path)
    got = export.group_samples(run, 0)
    assert list(got) == [0]
    assert got[0][0].tolist() == [1000, 5000] and got[0][1].tolist() == [3000, 9000]
    assert got[0][0].dtype == np.int64
    assert export.group_samples(run, 5) == {}
    old = hand_run(tmp_path, "old", schema=1)
    assert {i: (s.tolist(), e.tolist()) for i, (s, e) in export.group_samples(old, 1).items()} \
        == {3: ([10], [15])}


def test_parquet_keeps_the_types_whatever_the_values(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    run = hand_run(tmp_path)
    written = export.export([run], tmp_path / "out", "parquet")
    assert written["groups"]["rows"] == 3 and written["samples"]["rows"] == 2
    groups = pq.read_table(tmp_path / "out" / "groups.parquet")
    types = {f.name: str(f.type) for f in groups.schema}
    assert types["group"] == types["instances"] == types["repeat"] == "int64"
    assert types["noisy"] == types["emulated"] == types["oversubscribed"] == "bool"
    assert types["throughput_ips"] == types["latency_p99_ms"] == types["steal_share"] == "double"
    assert types["placement"] == types["run_path"] == types["host"] == "string"
    rows = groups.to_pylist()
    assert rows[0]["throughput_ips"] == 123.5 and rows[0]["noisy"] is True
    assert rows[1]["throughput_ips"] is None and rows[1]["repeat"] == 0
    points = pq.read_table(tmp_path / "out" / "points.parquet").to_pylist()
    assert points[0]["ci95_low_ips"] == 110.0 and points[0]["groups"] == "0 1"
    assert points[0]["complete"] == 3 and points[0]["unstable"] is True
    samples = pq.read_table(tmp_path / "out" / "samples.parquet").to_pylist()
    assert samples == [
        {"run": "latency-a", "group": 0, "instance": 0, "start_ns": 1000, "end_ns": 3000,
         "latency_ms": 0.002},
        {"run": "latency-a", "group": 0, "instance": 0, "start_ns": 5000, "end_ns": 9000,
         "latency_ms": 0.004}]
    # a run without samples: an empty samples table of the same columns
    bare = Run(tmp_path / "bare", {"scenario": "latency", "groups": [{"id": 0}]})
    (tmp_path / "bare").mkdir()
    export.export([bare], tmp_path / "out2", "parquet")
    empty = pq.read_table(tmp_path / "out2" / "samples.parquet")
    assert empty.num_rows == 0 and empty.column_names == list(export.SAMPLE_COLUMNS)


def test_refusals_and_a_failed_export_that_changes_nothing(tmp_path):
    run = hand_run(tmp_path)
    with pytest.raises(UsageError) as info:
        export.export([run], tmp_path / "out", "xlsx")
    assert str(info.value) == "unknown --format 'xlsx': choose from csv, parquet"
    with pytest.raises(UsageError) as info:
        export.export([], tmp_path / "out")
    assert str(info.value) == "no runs to export"
    twin = hand_run(tmp_path / "elsewhere", "latency-a")
    with pytest.raises(UsageError) as info:
        export.export([run, twin], tmp_path / "out")
    assert str(info.value) == (f"two runs are named latency-a ({run.path} and {twin.path}): "
                               "export them separately")
    export.check_unique([run, run])  # the same run twice is one run
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (run.path / "samples" / "g0.npz").write_bytes(b"not a zip file")
    with pytest.raises(ResultsError, match="g0.npz: not a readable samples file"):
        export.export([run], out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
