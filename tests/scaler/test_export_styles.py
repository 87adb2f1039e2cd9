"""``scaler.export``'s columns that runs after ``--threading`` and ``--isa`` fill, and the
run-level flags, from hand-made runs: each value is the one the test wrote into the run,
whichever level (the run, the group, the point) holds it."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from scaler import export
from scaler.results import ResultsError, Run

STYLE_KEYS = ("threading", "isa_cap", "emulated", "simulated", "noisy")


def back(bound: list[str]) -> dict:
    return {"process_cpus": "0-1", "bound_cpus": bound, "bound_by": "runtime"}


def runs(tmp_path) -> list[Run]:
    """Run A: emulated (run level), partial for two reasons; a model-zoo group under the
    avx2 cap, simulated (group level), two instances bound thread by thread to CPUs 0 and 1
    (stacked) that spun 25% and 50%; a defaults point under avx512_core, noisy and
    simulated. Run B: no flag at run level, no groups; a point emulated at point level."""
    group = {"id": 0, "placement": "shared", "threading": "model-zoo", "isa_cap": "avx2",
             "simulated": True,
             "per_instance": [{"thread_readback": back(["0", "1"]), "spin": {"share": 0.25}},
                              {"thread_readback": back(["0", "1"]), "spin": {"share": 0.5}}]}
    point = {"placement": "shared", "threading": "defaults", "isa_cap": "avx512_core",
             "noisy": True, "simulated": True}
    a = {"scenario": "scaling", "emulated": True, "status": "partial",
         "partial_reasons": ["interrupted", 3], "groups": [group], "points": [point]}
    b = {"scenario": "scaling", "points": [{"placement": "pinned", "emulated": True}]}
    return [Run(tmp_path / "a", a), Run(tmp_path / "b", b)]


def test_a_groups_style_cap_flags_threads_and_run_status(tmp_path):
    """The group row: model-zoo, avx2, emulated from the run, simulated from the group,
    stacked threads with the largest spin (50%), and the run's status with its reasons
    joined; run B (no groups key) gives no group row."""
    rows = list(export.group_rows(runs(tmp_path)))
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in STYLE_KEYS} == {
        "threading": "model-zoo", "isa_cap": "avx2", "emulated": True, "simulated": True,
        "noisy": False}
    assert row["thread_stacking"] == "stacked" and row["spin_share"] == 0.5
    assert row["run_status"] == "partial"
    assert row["run_partial_reasons"] == "interrupted; 3"


def test_a_points_style_cap_and_flags_from_the_point_or_the_run(tmp_path):
    """Run A's point: defaults, avx512_core, noisy, emulated from the run, simulated from the
    point. Run B's point: emulated from the point alone (the run says nothing), tuned and
    native by default, not simulated."""
    a, b = export.point_rows(runs(tmp_path))
    assert {k: a[k] for k in STYLE_KEYS} == {
        "threading": "defaults", "isa_cap": "avx512_core", "emulated": True,
        "simulated": True, "noisy": True}
    assert {k: b[k] for k in STYLE_KEYS} == {
        "threading": "tuned", "isa_cap": "native", "emulated": True, "simulated": False,
        "noisy": False}


def samples_run(tmp_path, name: str, groups: list[dict], arrays: dict) -> Run:
    path = tmp_path / name
    (path / "samples").mkdir(parents=True)
    for gid in {int(k[1:k.index("_")]) for k in arrays}:
        np.savez(path / "samples" / f"g{gid}.npz",
                 **{k: np.array(v, np.int64) for k, v in arrays.items()
                    if k.startswith(f"g{gid}_")})
    doc = {"scenario": "latency", "groups": groups}
    (path / "run.json").write_text(json.dumps(doc))
    return Run(path, doc)


def test_samples_are_read_against_the_groups_record(tmp_path):
    """Group 0's record says instance 0 kept 3 queries; its file holds 2: refused, naming the
    file and both counts (the record is the group's own, found by its id)."""
    run = samples_run(tmp_path, "short", [{"id": 2}, {"id": 0, "per_instance": [
        {"index": 0, "queries": 3}]}], {"g0_i0_start_ns": [1, 2], "g0_i0_end_ns": [3, 4]})
    with pytest.raises(ResultsError) as caught:
        export.group_samples(run, 0)
    assert str(caught.value) == (f"{run.path / 'samples' / 'g0.npz'}: g0_i0_start_ns holds 2 "
                                 "samples, the run recorded 3")


def test_every_sample_chunk_after_a_group_without_id_or_an_empty_instance(tmp_path):
    """Groups in the order: one without an id (skipped), group 1 whose instance 0 kept
    nothing and instance 1 kept one query (10 -> 25 ns), group 0 with one query (100 -> 400
    ns); a run without a groups key adds nothing. Every kept query is a row, as int64."""
    run = samples_run(tmp_path, "odd", [{"placement": "no id"}, {"id": 1}, {"id": 0}], {
        "g1_i0_start_ns": [], "g1_i0_end_ns": [], "g1_i1_start_ns": [10],
        "g1_i1_end_ns": [25], "g0_i0_start_ns": [100], "g0_i0_end_ns": [400]})
    bare = Run(tmp_path / "bare", {"scenario": "latency"})
    chunks = list(export.sample_chunks([run, bare]))
    assert [(c["run"], c["group"].tolist(), c["instance"].tolist(), c["start_ns"].tolist(),
             c["end_ns"].tolist()) for c in chunks] == [
        ("odd", [1], [1], [10], [25]), ("odd", [0], [0], [100], [400])]
    assert all(c["group"].dtype == c["instance"].dtype == np.int64 for c in chunks)


def test_parquet_sample_rows_of_two_runs_are_counted_and_missing_text_stays_null(tmp_path):
    """Two runs of 1 and 2 kept queries: 3 sample rows; a group without a placement reads
    back a null placement, not the text "None"."""
    pq = pytest.importorskip("pyarrow.parquet")
    a = samples_run(tmp_path, "a", [{"id": 0}], {"g0_i0_start_ns": [1], "g0_i0_end_ns": [2]})
    b = samples_run(tmp_path, "b", [{"id": 0}], {"g0_i0_start_ns": [1, 5],
                                                 "g0_i0_end_ns": [2, 9]})
    written = export.export([a, b], tmp_path / "out", "parquet")
    assert written["samples"]["rows"] == 3
    assert pq.read_table(tmp_path / "out" / "samples.parquet").num_rows == 3
    groups = pq.read_table(tmp_path / "out" / "groups.parquet").to_pylist()
    assert [g["placement"] for g in groups] == [None, None]


def test_parquet_without_pyarrow_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """pyarrow not importable (its modules set to None, as Python does for a package that
    failed): parquet is refused with what to install, and the output folder is not even
    created; csv still exports."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    run = samples_run(tmp_path, "a", [{"id": 0}], {"g0_i0_start_ns": [1], "g0_i0_end_ns": [2]})
    with pytest.raises(export.PyarrowMissing) as caught:
        export.export([run], tmp_path / "out", "parquet")
    assert str(caught.value) == ("--format parquet needs pyarrow: pip install pyarrow "
                                 "(or use --format csv)")
    assert not (tmp_path / "out").exists()
    assert export.export([run], tmp_path / "csv")["samples"]["rows"] == 1


def test_a_staging_folder_left_by_an_earlier_export_of_this_pid_is_replaced(tmp_path):
    """An export killed earlier left ``.export-PID.tmp`` (this pid, reused) with a file in
    it: the next export replaces it and leaves only its three tables."""
    run = samples_run(tmp_path, "a", [{"id": 0}], {"g0_i0_start_ns": [1], "g0_i0_end_ns": [2]})
    staging = tmp_path / "out" / f".export-{os.getpid()}.tmp"
    staging.mkdir(parents=True)
    (staging / "groups.csv").write_text("half")
    export.export([run], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "groups.csv", "points.csv", "samples.csv"]


def test_samples_of_a_group_the_record_does_not_list_are_still_read(tmp_path):
    """A samples file ``g5.npz`` whose group the run does not record (and a run without a
    groups key at all): read by the group's id, with no count to check against."""
    run = samples_run(tmp_path, "a", [{"id": 0}], {"g5_i2_start_ns": [4], "g5_i2_end_ns": [6]})
    got = export.group_samples(run, 5)
    assert {i: (s.tolist(), e.tolist()) for i, (s, e) in got.items()} == {2: ([4], [6])}
    bare = Run(run.path, {"scenario": "latency"})
    assert list(export.group_samples(bare, 5)) == [2]
