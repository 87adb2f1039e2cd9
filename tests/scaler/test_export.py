"""``scaler export``: tidy tables that pandas reads back without parsing run.json.

Inputs are real runs: the committed reference suite of the development machine (ResNet50,
schema 1: one ``samples.npz``) and a fresh null-engine run made here (schema 2: one samples
file per group). The expected values are read straight from ``run.json`` and the ``.npz``
files with json and numpy, not through the export code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaler.export import GROUP_COLUMNS, POINT_COLUMNS, SAMPLE_COLUMNS
from tests.scaler.helpers import ROOT, scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

REFERENCE = sorted((ROOT / "results" / "reference").glob("suite-*"))[0]
SHORT = ["--min-duration", "0.2", "--min-queries", "5", "--warmup", "0"]


def raw_samples(run: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(group, instance) -> (start_ns, end_ns), read with numpy alone."""
    out = {}
    files = [run / "samples.npz", *sorted((run / "samples").glob("g*.npz"))]
    for f in files:
        if not f.is_file():
            continue
        with np.load(f) as data:
            for key in data.files:
                g, i, edge = key.split("_", 2)
                if edge == "start_ns":
                    out[(int(g[1:]), int(i[1:]))] = (data[key],
                                                     data[f"{g}_{i}_end_ns"])
    return out


def check_round_trip(out: Path, fmt: str, runs: list[Path]) -> dict[str, pd.DataFrame]:
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    tables = {name: read(out / f"{name}.{fmt}") for name in ("groups", "points", "samples")}
    groups, points, samples = tables["groups"], tables["points"], tables["samples"]
    assert tuple(groups.columns) == GROUP_COLUMNS
    assert tuple(points.columns) == POINT_COLUMNS
    assert tuple(samples.columns) == SAMPLE_COLUMNS
    for column in ("noisy", "emulated", "simulated", "oversubscribed"):
        assert groups[column].dtype == bool, column
    expected_samples = 0
    for run in runs:
        doc = json.loads((run / "run.json").read_text())
        mine = groups[groups["run"] == run.name].set_index("group")
        assert len(mine) == len(doc["groups"])
        for g in doc["groups"]:
            row = mine.loc[g["id"]]
            assert row["placement"] == g["placement"] and row["instances"] == g["instances"]
            assert row["batch"] == g["batch"] and row["status"] == g["status"]
            assert row["throughput_ips"] == pytest.approx(g["throughput_ips"], rel=1e-12)
            assert row["latency_p99_ms"] == pytest.approx(g["latency_ms"]["p99"], rel=1e-12)
            assert bool(row["noisy"]) == bool(g.get("noisy"))
            assert row["scenario"] == doc["scenario"]
        raw = raw_samples(run)
        expected_samples += sum(len(s) for s, _ in raw.values())
        mine_s = samples[samples["run"] == run.name]
        for (g, i), (start, end) in raw.items():
            sel = mine_s[(mine_s["group"] == g) & (mine_s["instance"] == i)]
            assert sel["start_ns"].tolist() == start.tolist()
            assert sel["end_ns"].tolist() == end.tolist()
            assert np.allclose(sel["latency_ms"], (end - start) / 1e6, rtol=0, atol=1e-9)
    assert len(samples) == expected_samples
    # every sample joins to its group
    joined = samples.merge(groups[["run", "group", "placement"]], on=["run", "group"],
                           how="left", validate="many_to_one")
    assert joined["placement"].notna().all()
    assert not list(out.glob(".*")), "temporary files left behind"
    return tables


def test_reference_suite_round_trips_into_pandas_as_csv_and_parquet(tmp_path):
    runs = sorted(p for p in REFERENCE.iterdir() if (p / "run.json").is_file())
    for fmt in ("csv", "parquet"):
        r = scaler_cmd("export", str(REFERENCE), "--format", fmt, "--out",
                       str(tmp_path / fmt), "--json", timeout=120)
        assert r.returncode == 0, r.stderr
        written = json.loads(r.stdout)
        assert set(written) == {"groups", "points", "samples"}
        tables = check_round_trip(tmp_path / fmt, fmt, runs)
        assert written["samples"]["rows"] == len(tables["samples"])
    a = pd.read_csv(tmp_path / "csv" / "points.csv")
    b = pd.read_parquet(tmp_path / "parquet" / "points.parquet")
    assert np.allclose(a["throughput_ips"], b["throughput_ips"], equal_nan=True)
    scaling = a[a["scenario"] == "scaling"]
    assert set(scaling["placement"]) == {"shared", "pinned"}
    assert scaling["instances"].max() == 8


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """A real schema-2 run: two repeats, null engine (about 250,000 queries a group)."""
    out = tmp_path_factory.mktemp("runs")
    r = scaler_cmd("latency", "--engine", "null", "--placement", "pinned",
                   "--repeat", "2", *SHORT, "--out", str(out), "--json", timeout=180)
    assert r.returncode == 0, r.stderr
    return Path(json.loads(r.stdout)["run"])


def test_fresh_run_and_reference_mixed(tmp_path, fresh_run):
    ref_scaling = next(REFERENCE.glob("scaling-*"))
    r = scaler_cmd("export", str(fresh_run), str(ref_scaling), "--format", "parquet",
                   "--out", str(tmp_path), timeout=180)
    assert r.returncode == 0, r.stderr
    assert "samples:" in r.stdout and "rows" in r.stdout
    tables = check_round_trip(tmp_path, "parquet", [fresh_run, ref_scaling])
    groups = tables["groups"]
    fresh = groups[groups["run"] == fresh_run.name]
    assert sorted(fresh["repeat"].unique()) == [0, 1]
    assert set(fresh["experiment"]) == {"latency"}
    # the fresh run's noise meter lands in the table, the old run's is unknown
    assert fresh["others_cpu_share"].notna().all()
    points = tables["points"]
    assert set(points[points["run"] == fresh_run.name]["repeats"]) == {2}


def test_a_failed_export_leaves_the_folder_as_it_was(tmp_path, fresh_run):
    out = tmp_path / "out"
    assert scaler_cmd("export", str(fresh_run), "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / fresh_run.name
    shutil.copytree(fresh_run, broken)
    (broken / "samples" / "g1.npz").write_bytes(b"not a zip file")
    r = scaler_cmd("export", str(broken), "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "g1.npz" in lines[0] and "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, fresh_run):
    # pyarrow is installed here: hide it from the child the way a missing package looks
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from scaler.cli import main\n"
            f"sys.exit(main(['export', {str(fresh_run)!r}, '--format', 'parquet', "
            f"'--out', {str(tmp_path / 'x')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install pyarrow" in lines[0], r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, needle", [
    (["export", "/no/such/run", "--out", "/tmp/x"], "no such run folder"),
    (["export", str(REFERENCE), "--format", "xlsx", "--out", "/tmp/x"], "--format"),
    (["export", str(REFERENCE)], "--out"),
    (["export", str(REFERENCE), "--out", "/proc/version/x"], "output folder"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    r = scaler_cmd(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
