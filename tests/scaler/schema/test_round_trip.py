"""The typed run record gives back exactly the JSON the tool writes: every committed reference
run, fresh null-engine runs (the session's suite's, closed loop; a served run) and a simulated
run, read into ``scaler.schema.Run`` and written out again, are the same bytes (json.dumps,
sorted keys), and a run.json saved by this scaler is its record's JSON key for key, in the
same order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scaler import results, schema
from tests.scaler.helpers import ROOT, scaler_cmd
from tests.suites import null_suite

REFERENCE = sorted((ROOT / "results" / "reference").rglob("run.json"))
NULL = ["--engine", "null", "--min-queries", "10", "--warmup", "0", "--min-duration", "0.2"]


def same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def round_trip(folder: Path) -> schema.Run:
    """The run loaded, its record's JSON checked against the document (byte for byte after
    json.dumps with sorted keys, and in the key order it was saved in)."""
    run = results.load_run(folder)
    record = run.record
    assert isinstance(record, schema.Run) and record.scenario == run.scenario
    again = schema.Run.from_dict(run.doc).to_dict()
    assert same(again, run.doc)
    assert json.dumps(again) == json.dumps(run.doc)  # key order too
    raw = json.loads((Path(folder) / "run.json").read_text())
    if raw["schema_version"] == results.SCHEMA_VERSION and "stale" not in run.doc:
        assert json.dumps(schema.Run.from_dict(raw).to_dict()) == json.dumps(raw)
    return record


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_committed_reference_run_round_trips(path):
    record = round_trip(path.parent)
    assert len(record.groups) == len(results.load_run(path.parent).doc["groups"])


def test_the_reference_runs_are_there():
    assert len(REFERENCE) >= 40  # both schema versions: 1 (upgraded on load) and 2
    versions = {json.loads(p.read_text())["schema_version"] for p in REFERENCE}
    assert versions == {1, 2}


def _fresh(out: Path, *args: str) -> Path:
    done = scaler_cmd(*args, "--out", str(out), timeout=240)
    assert done.returncode == 0, done.stderr
    (folder,) = [p.parent for p in out.rglob("run.json")]
    return folder


@pytest.fixture(scope="module")
def suite_folder(artifacts) -> Path:
    """The session's null-engine suite (built by the serial group first; by this fixture's
    setup when it comes first)."""
    return null_suite(artifacts)["folder"]


def test_the_fresh_null_engine_suites_runs_round_trip(suite_folder):
    """Every run of the session's null-engine suite (tests/suites.py: measured once, in the
    serial group, by ``scaler suite`` as a user runs it; read here, not measured again): its
    latency, throughput, scaling (shared and pinned x 1, 2, two repeats: 8 groups), thread-style
    scaling and multistream runs."""
    records = {run.name: round_trip(run) for run in sorted(p.parent for p in
                                                          suite_folder.glob("*/run.json"))}
    assert {r.scenario for r in records.values()} == {"latency", "throughput", "scaling",
                                                      "multistream"}
    (name,) = [n for n in records if re.fullmatch(r"scaling-\d{8}-\d{6}", n)]
    record = records[name]
    assert len(record.groups) == 8 and len(record.points) == 4
    g = record.groups[-1]
    assert g.complete and g.per_instance and g.per_instance[0].samples
    assert g.plan.cores is not None and g.plan.oversubscribed is False
    assert "stall_timeout_s" in g.extra  # a key the record does not type: kept as it was
    assert {p.placement for p in record.points} == {"shared", "pinned"}


@pytest.mark.serial
def test_a_fresh_null_engine_server_run_round_trips(tmp_path):
    folder = _fresh(tmp_path, "server", "--engine", "null", "--target-qps", "200",
                    "--min-queries", "20", "--min-duration", "0.2", "--warmup", "0")
    record = round_trip(folder)
    served = [g for g in record.groups if g.target_qps is not None]
    assert served and all(g.per_instance[0].requests is not None for g in served)
    assert record.requested.stat and record.requested.latency_bound_ms


def test_a_simulated_run_round_trips(tmp_path):
    source = next(p.parent for p in REFERENCE if "scaling" in p.parent.name)
    out = tmp_path / "sim"
    done = scaler_cmd("simulate", str(source), "--machine", "1s2c1t", "--instances", "1-2",
                      "--queries", "1000", "--out", str(out), timeout=240)
    assert done.returncode == 0, done.stderr
    (folder,) = [p.parent for p in out.rglob("run.json")]
    record = round_trip(folder)
    assert record.simulated and all(g.simulated for g in record.groups)
