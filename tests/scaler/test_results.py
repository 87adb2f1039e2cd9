"""Runs: atomic save, load with schema checks, upgrade of old versions (see test_runfolders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scaler import results, runfolders
from scaler.errors import ScalerError, UsageError


def gs(*marks):
    """Group records that the read boundary takes, told apart by a mark."""
    return [{"id": k, "placement": "pinned", "instances": 1, "mark": m}
            for k, m in enumerate(marks)]


def marks(doc):
    return [g["mark"] for g in doc["groups"]]


def test_save_then_load_round_trip(tmp_path):
    path = tmp_path / "latency-1"
    arrays = {"g0_i0_start_ns": np.arange(5, dtype=np.int64)}
    results.save_run(path, {"scenario": "latency", "groups": []}, arrays)
    run = results.load_run(path)
    assert run.doc["schema_version"] == results.SCHEMA_VERSION
    assert run.scenario == "latency"
    assert np.array_equal(run.samples()["g0_i0_start_ns"], arrays["g0_i0_start_ns"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_saving_again_replaces_and_keeps_other_files(tmp_path):
    path = tmp_path / "scaling-1"
    results.save_run(path, {"scenario": "scaling", "groups": gs(1)}, {})
    (path / "scaling.png").write_bytes(b"png")
    results.save_run(path, {"scenario": "scaling", "groups": gs(1, 2)}, {})
    assert marks(results.load_run(path).doc) == [1, 2]
    assert (path / "scaling.png").read_bytes() == b"png"


def test_failed_save_leaves_previous_version(tmp_path):
    path = tmp_path / "run"
    results.save_run(path, {"scenario": "latency", "groups": gs(1)}, {})
    with pytest.raises(TypeError):
        results.save_run(path, {"scenario": "latency", "groups": [object()]}, {})
    assert marks(results.load_run(path).doc) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("content, message", [
    ("{oops", "corrupt run file"),
    ('["a list"]', "not a scaler run file"),
    ('{"schema_version": 99, "scenario": "latency"}', "newer than this scaler"),
    ('{"schema_version": "1", "scenario": "latency"}', "bad schema_version"),
])
def test_foreign_or_corrupt_files_are_clear_errors(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(ScalerError, match=message):
        results.load_run(tmp_path)


def test_missing_folder_and_folder_without_run(tmp_path):
    with pytest.raises(UsageError, match="no such run folder"):
        results.load_run(tmp_path / "nope")
    with pytest.raises(ScalerError, match="not a scaler run folder"):
        results.load_run(tmp_path)


def test_old_schema_versions_are_upgraded(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(results.UPGRADES, 1, lambda d: {**d, "schema_version": 2, "new": True})
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 1, "scenario": "latency"}))
    assert results.load_run(tmp_path).doc["new"] is True


def test_a_committed_schema_1_run_is_upgraded_to_points(tmp_path):
    """A real run measured and saved by scaler before repeats existed (results/reference)."""
    from scaler.summaries import summarize
    from tests.scaler.helpers import ROOT

    folder = next((ROOT / "results" / "reference").glob("suite-*/scaling-*"))
    assert json.loads((folder / "run.json").read_text())["schema_version"] == 1
    run = results.load_run(folder)
    assert run.doc["schema_version"] == results.SCHEMA_VERSION
    assert len(run.doc["points"]) == len(run.doc["groups"])  # one repeat each
    summary = summarize(run.doc, str(folder))
    for series in summary["series"]:
        for p in series["points"]:
            assert p["ci95_ips"] is None and len(p["repeats_ips"]) == 1
            assert p["noisy"] is False and p["others_cpu_share"] is None  # not measured then
    assert all(c["ci95"] is None and not c["significant"] for c in summary["comparisons"])


# --- schema checks: what load_run must refuse, and what it must keep ---------------------


@pytest.mark.parametrize("doc, message", [
    ({"scenario": "latency"}, "not a scaler run file (no schema_version or scenario)"),
    ({"schema_version": 1}, "not a scaler run file (no schema_version or scenario)"),
    ({"schema_version": 0, "scenario": "latency"}, "bad schema_version 0"),
    ({"schema_version": -1, "scenario": "latency"}, "bad schema_version -1"),
    ({"schema_version": 1.0, "scenario": "latency"}, "bad schema_version 1.0"),
    ({"schema_version": True, "scenario": "latency"}, "bad schema_version True"),
    ({"schema_version": None, "scenario": "latency"}, "bad schema_version None"),
    ({"schema_version": 3, "scenario": "latency"}, "schema_version 3 is newer than this scaler "
                                                   "understands (2); upgrade scaler"),
    ({"schema_version": 1, "scenario": 5}, "bad scenario 5"),
    ({"schema_version": 1, "scenario": None}, "bad scenario None"),
    ({"schema_version": 1, "scenario": ""}, "bad scenario ''"),
])
def test_load_run_refuses_bad_documents(tmp_path, doc, message):
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(results.ResultsError) as info:
        results.load_run(tmp_path)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'run.json'}: ") and text.endswith(message)
    assert "\n" not in text and not isinstance(info.value, UsageError)


def test_load_run_accepts_the_run_file_itself_and_keeps_the_document(tmp_path):
    doc = {"schema_version": 2, "scenario": "scaling",
           "groups": [{"id": 0, "placement": "pinned", "instances": 2}]}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    for name in (tmp_path, tmp_path / "run.json", str(tmp_path)):
        run = results.load_run(name)
        assert run.path == tmp_path and run.doc == doc and run.scenario == "scaling"


def test_a_folder_with_run_json_as_a_folder_is_not_a_run(tmp_path):
    (tmp_path / "run.json").mkdir()
    with pytest.raises(results.ResultsError, match="not a scaler run folder"):
        results.load_run(tmp_path)


def test_unreadable_text_is_a_corrupt_run_file(tmp_path):
    (tmp_path / "run.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(results.ResultsError, match="corrupt run file"):
        results.load_run(tmp_path)


def test_upgrades_chain_through_every_version(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(results.UPGRADES, 1, lambda d: {**d, "schema_version": 2, "a": 1})
    monkeypatch.setitem(results.UPGRADES, 2, lambda d: {**d, "schema_version": 3, "b": 2})
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 1, "scenario": "latency"}))
    doc = results.load_run(tmp_path).doc
    assert (doc["schema_version"], doc["a"], doc["b"]) == (3, 1, 2)
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 3, "scenario": "latency"}))
    assert "a" not in results.load_run(tmp_path).doc  # current documents are not touched


# --- saving --------------------------------------------------------------------------


def test_saved_files_are_what_they_claim(tmp_path):
    path = tmp_path / "deep" / "run"
    arrays = {"g0_i0_end_ns": np.array([3, 1, 2], dtype=np.int64),
              "g0_i1_end_ns": np.array([], dtype=np.int64)}
    doc = {"scenario": "latency", "values": np.array([1.5, 2.5]), "where": tmp_path,
           "nested": {"n": np.int64(7)}}
    assert results.save_run(path, doc, arrays) == path
    text = (path / "run.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n "schema_version": 2,\n')
    stored = json.loads(text)
    assert stored == {"schema_version": 2, "scenario": "latency", "values": [1.5, 2.5],
                      "where": str(tmp_path), "nested": {"n": 7}}
    samples = results.load_run(path).samples()
    assert sorted(samples) == ["g0_i0_end_ns", "g0_i1_end_ns"]
    assert samples["g0_i0_end_ns"].tolist() == [3, 1, 2]
    assert samples["g0_i0_end_ns"].dtype == np.int64 and samples["g0_i1_end_ns"].size == 0
    assert sorted(p.name for p in path.iterdir()) == ["run.json", "samples"]
    assert sorted(p.name for p in (path / "samples").iterdir()) == ["g0.npz"]


def test_json_default_names_what_it_cannot_store():
    assert results._json_default(np.arange(3)) == [0, 1, 2]
    assert results._json_default(Path("/a/b")) == "/a/b"
    with pytest.raises(TypeError, match="^cannot store object in run.json$"):
        results._json_default(object())


def test_saving_again_writes_each_groups_samples_once_and_keeps_other_files(tmp_path):
    path = tmp_path / "run"
    first = {"g0_i0_start_ns": np.arange(3)}
    results.save_run(path, {"scenario": "scaling", "groups": gs(0)}, first)
    g0 = path / "samples" / "g0.npz"
    written = g0.stat().st_mtime_ns
    (path / "plots").mkdir()
    (path / "plots" / "x.png").write_bytes(b"png")
    (path / "notes.txt").write_text("kept")
    # a group's samples never change: saving again adds the new group's, leaves g0 alone
    results.save_run(path, {"scenario": "scaling", "groups": gs(0, 1)},
                     {**first, "g1_i0_start_ns": np.arange(2), "g1_i1_start_ns": np.arange(4)})
    assert g0.stat().st_mtime_ns == written
    samples = results.load_run(path).samples()
    assert sorted(samples) == ["g0_i0_start_ns", "g1_i0_start_ns", "g1_i1_start_ns"]
    assert samples["g1_i1_start_ns"].tolist() == [0, 1, 2, 3]
    assert marks(results.load_run(path).doc) == [0, 1]
    assert (path / "notes.txt").read_text() == "kept" and (path / "plots" / "x.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert not [p for p in path.rglob(".*tmp*")]  # no temporary file left behind


def test_missing_and_corrupt_samples(tmp_path):
    path = tmp_path / "run"
    results.save_run(path, {"scenario": "latency"}, {"g0_i0_end_ns": np.arange(2)})
    (path / "samples" / "g0.npz").unlink()
    assert results.load_run(path).samples() == {}
    (path / "samples" / "g0.npz").write_bytes(b"not a zip file")
    with pytest.raises(results.ResultsError, match="g0.npz: not a readable samples file"):
        results.load_run(path).samples()


def test_schema_1_samples_in_one_file_are_still_read(tmp_path):
    path = tmp_path / "run"
    results.save_run(path, {"scenario": "latency"}, {})
    np.savez_compressed(path / "samples.npz", g0_i0_end_ns=np.arange(5))
    assert results.load_run(path).samples()["g0_i0_end_ns"].tolist() == [0, 1, 2, 3, 4]


# --- finding runs, what a run records ----------------------------------------------------


def test_find_runs_reads_runs_and_suites(tmp_path):
    suite = tmp_path / "suite"
    for name in ("b-run", "a-run"):
        results.save_run(suite / name, {"scenario": name[0]}, {})
    (suite / "not-a-run").mkdir()
    (suite / "file.txt").write_text("")
    single = tmp_path / "single"
    results.save_run(single, {"scenario": "latency"}, {})
    runs = results.find_runs([str(suite), str(single), str(single / "run.json")])
    assert [r.path.name for r in runs] == ["a-run", "b-run", "single", "single"]
    with pytest.raises(results.ResultsError, match="not a scaler run folder"):
        results.find_runs([str(suite / "not-a-run")])
    with pytest.raises(UsageError, match="no such run folder"):
        results.find_runs([str(tmp_path / "missing")])


def test_host_info_and_command_line(monkeypatch):
    import platform

    info = results.host_info()
    assert info["hostname"] == platform.node() and info["kernel"] == platform.release()
    assert info["machine"] == platform.machine()
    assert info["versions"]["python"] == platform.python_version()
    assert info["versions"]["numpy"] == np.__version__
    assert {"scaler", "uvloop"} <= set(info["versions"])
    monkeypatch.setattr("sys.argv", ["/usr/local/bin/scaler", "latency", "--json"])
    assert results.command_line() == ["scaler", "latency", "--json"]
    monkeypatch.setattr("sys.argv", ["/src/scaler/__main__.py", "suite", "--quick"])
    assert results.command_line() == ["python", "-m", "scaler", "suite", "--quick"]


def test_a_file_other_than_run_json_is_not_its_folder(tmp_path):
    results.save_run(tmp_path / "run", {"scenario": "latency"}, {})
    (tmp_path / "run" / "notes.txt").write_text("x")
    with pytest.raises(results.ResultsError, match="not a scaler run folder"):
        results.load_run(tmp_path / "run" / "notes.txt")


def test_a_stale_temporary_folder_is_replaced(tmp_path):
    import os

    path = tmp_path / "run"
    stale = tmp_path / f".run.tmp-{os.getpid()}"
    stale.mkdir()
    (stale / "junk.txt").write_text("from a crashed save")
    results.save_run(path, {"scenario": "latency"}, {})
    assert sorted(p.name for p in path.iterdir()) == ["run.json", "samples"]
    assert not stale.exists()


def test_a_failing_save_keeps_the_previous_run_json(tmp_path, monkeypatch):
    # fault injection: the kernel refusing the rename of the new run.json into place
    import os

    path = tmp_path / "run"
    results.save_run(path, {"scenario": "latency", "groups": gs(1)}, {})
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith("run.json"):
            raise OSError("injected failure")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    # the CLI's one-line error (exit 2), naming the folder
    with pytest.raises(results.ResultsWriteError, match="injected failure"):
        results.save_run(path, {"scenario": "latency", "groups": gs(2)}, {})
    monkeypatch.undo()
    assert marks(results.load_run(path).doc) == [1]
    assert sorted(p.name for p in path.iterdir()) == ["run.json", "samples"]  # no temp file


def test_host_info_lists_every_installed_engine_package():
    from importlib import metadata

    versions = results.host_info()["versions"]
    for package in ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert"):
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            assert package not in versions
        else:
            assert versions[package] == installed


def test_a_first_save_that_fails_raises_its_own_error_and_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot store object"):
        results.save_run(tmp_path / "run", {"scenario": "latency", "x": object()}, {})
    assert list(tmp_path.iterdir()) == []


# -- saves that fail, names taken twice, what dead writers leave ------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs of our own (root only): fills up, and can turn read-only."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30, check=False)


def incompressible(nbytes: int, group: int = 0) -> dict:
    return {f"g{group}_i0_start_ns": np.random.default_rng(0).integers(0, 2**62, nbytes // 8)}


def test_a_full_folder_keeps_the_previous_save(small_fs):
    path = small_fs / "scaling-1"
    results.save_run(path, {"scenario": "scaling", "groups": gs(1)}, incompressible(64 << 10))
    with pytest.raises(results.ResultsWriteError) as info:
        results.save_run(path, {"scenario": "scaling", "groups": gs(1, 2)},
                         {**incompressible(64 << 10), **incompressible(1 << 20, group=1)})
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"cannot save the run in {small_fs}: No space left on device")
    assert "keeps its previous save" in message
    assert marks(results.load_run(path).doc) == [1]
    assert len(results.load_run(path).samples()["g0_i0_start_ns"]) == (64 << 10) // 8
    assert sorted(p.name for p in small_fs.iterdir()) == ["scaling-1"]  # no half-written copy
    results.save_run(path, {"scenario": "scaling", "groups": gs(1, 2)}, {})  # space came back


def test_a_folder_turned_read_only_keeps_the_previous_save(small_fs):
    import subprocess

    path = small_fs / "latency-1"
    results.save_run(path, {"scenario": "latency", "groups": gs(1)}, {})
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True, timeout=30)
    with pytest.raises(results.ResultsWriteError, match="Read-only file system"):
        results.save_run(path, {"scenario": "latency", "groups": gs(1, 2)}, {})
    assert marks(results.load_run(path).doc) == [1]
    with pytest.raises(results.ResultsWriteError, match="cannot write in the results folder"):
        runfolders.new_run_path(small_fs, "latency")


def test_a_first_save_that_fails_says_nothing_was_written(small_fs):
    with pytest.raises(results.ResultsWriteError, match=r"\(latency-1 was not written\)"):
        results.save_run(small_fs / "latency-1", {"scenario": "latency"},
                         incompressible(1 << 20))


def test_two_runs_started_in_one_second_get_two_folders(tmp_path):
    """Today both would get the same name, and each save of one replaces the other's."""
    a = runfolders.new_run_path(tmp_path, "scaling")
    b = runfolders.new_run_path(tmp_path, "scaling")
    assert a != b and a.name.startswith("scaling-") and b.name.startswith("scaling-")
    results.save_run(a, {"scenario": "scaling", "groups": gs("a")}, {})
    results.save_run(b, {"scenario": "scaling", "groups": gs("b")}, {})
    assert marks(results.load_run(a).doc) == ["a"]
    assert marks(results.load_run(b).doc) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])


# --- schema 1 upgraded by hand-made documents ------------------------------------------------


def test_a_schema_1_document_is_upgraded_field_by_field(tmp_path):
    groups = [
        {"id": 0, "placement": "shared", "engine": "tf", "precision": "fp32", "instances": 1,
         "batch": 1, "status": "complete", "throughput_ips": 10.0, "per_instance": []},
        {"id": 1, "placement": "pinned", "engine": "tf", "precision": "fp32", "instances": 1,
         "batch": 1, "status": "complete", "throughput_ips": 12.0, "per_instance": [],
         "repeat": 4, "noise": {"others_cpu_share": 0.2}, "noisy": 1, "others_cpu_share": 0.2},
    ]
    doc = {"schema_version": 1, "scenario": "scaling", "requested": {"min_duration_s": 5},
           "groups": groups, "kept": "as is"}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    got = results.load_run(tmp_path).doc
    assert got["schema_version"] == 2 and got["kept"] == "as is"
    assert got["requested"] == {"repeat": 1, "min_duration_s": 5}
    added = [{k: g[k] for k in ("repeat", "noise", "noisy", "others_cpu_share")}
             for g in got["groups"]]
    assert added == [{"repeat": 0, "noise": None, "noisy": False, "others_cpu_share": None},
                     {"repeat": 4, "noise": {"others_cpu_share": 0.2}, "noisy": True,
                      "others_cpu_share": 0.2}]
    assert [p["groups"] for p in got["points"]] == [[0], [1]]
    assert [p["throughput_ips"] for p in got["points"]] == [10.0, 12.0]
    assert [p["noisy"] for p in got["points"]] == [False, True]
    # a schema-1 run that asked for repeats keeps its request; no groups: no points
    doc = {"schema_version": 1, "scenario": "latency", "requested": {"repeat": 3}}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    got = results.load_run(tmp_path).doc
    assert got["requested"] == {"repeat": 3} and got["groups"] == [] and got["points"] == []
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 1, "scenario": "x"}))
    assert results.load_run(tmp_path).doc["requested"] == {"repeat": 1}


# --- the CPU model and host facts --------------------------------------------------------------


@pytest.mark.parametrize(("text", "model"), [
    ("processor\t: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\nflags\t: fpu\n",
     "AMD EPYC 9R14 96-Core Processor"),
    ("processor : 0\nModel Name : Neoverse-V2\n", "Neoverse-V2"),  # arm64 kernels
    ("model name\t: Vendor CPU: rev 2 @ 3.0GHz\nmodel name\t: second\n",
     "Vendor CPU: rev 2 @ 3.0GHz"),  # the first line, everything after the first colon
    ("processor\t: 0\nflags\t: fpu\n", None),
    ("MODEL NAME : shouting\n", None),
])
def test_cpu_model_from_cpuinfo(tmp_path, text, model):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert results.cpu_model(str(path)) == model


def test_cpu_model_of_this_machine_and_a_missing_file(tmp_path):
    want = None
    with open("/proc/cpuinfo") as f:  # read here independently of the code
        for line in f:
            if line.startswith(("model name", "Model Name")):
                want = line.split(":", 1)[1].strip()
                break
    assert results.cpu_model() == want
    assert results.cpu_model(str(tmp_path / "missing")) is None


def test_host_info_records_the_cpu_model_and_host_facts():
    from scaler.hostfacts import host_facts

    info = results.host_info()
    assert info["cpu_model"] == results.cpu_model()
    assert set(info["facts"]) == set(host_facts())
    assert info["facts"]["virtualization"] == host_facts()["virtualization"]


# --- text files beside a run -------------------------------------------------------------------


def test_write_text_atomically_creates_replaces_and_leaves_no_temporary(tmp_path):
    import stat

    path = tmp_path / "suite" / "deep" / "summary.json"
    results.write_text_atomically(path, "first\n")
    assert path.read_text() == "first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others, as a report should
    results.write_text_atomically(path, "second")
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json"]


def test_write_text_atomically_writes_bytes_as_they_are(tmp_path):
    """Bytes (a kernel image, a figure) go in unchanged: no newline translation, no
    encoding; text beside them still goes in as text."""
    path = tmp_path / "kernel.elf"
    blob = bytes(range(256)) + b"\r\n\x00"
    results.write_text_atomically(path, blob)
    assert path.read_bytes() == blob
    results.write_text_atomically(path, "caf\u00e9\n")
    assert path.read_bytes() == "caf\u00e9\n".encode()


def test_write_text_atomically_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    import os

    path = tmp_path / "summary.txt"
    results.write_text_atomically(path, "old")
    real = os.replace

    def replace(src, dst):  # the temporary file vanishes and the rename fails
        os.unlink(src)
        raise OSError("injected failure")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="injected failure"):  # its own error, not the cleanup's
        results.write_text_atomically(path, "new")
    monkeypatch.setattr(os, "replace", real)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.txt"]
    with pytest.raises(TypeError):
        results.write_text_atomically(path, None)  # not text: nothing written, nothing left
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.txt"]


def test_a_failed_samples_write_raises_its_own_error(tmp_path):
    target = tmp_path / "g0.npz"

    def write(f):  # the temporary file is gone when the write fails
        Path(f.name).unlink()
        raise ValueError("injected failure")

    with pytest.raises(ValueError, match="injected failure"):
        results._write_atomically(target, write, binary=True)
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomically_writes_a_hidden_temporary_beside_the_file(tmp_path, monkeypatch):
    """The temporary file must be in the same folder (a rename across file systems is not
    atomic) and hidden (``.summary.json.XXXX.tmp``), so no reader mistakes it for a result."""
    import os

    path = tmp_path / "summary.json"
    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append(Path(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    results.write_text_atomically(path, "{}\n")
    (src,) = seen
    assert src.parent == tmp_path and src.name.startswith(".summary.json.")
    assert src.name.endswith(".tmp") and path.read_text() == "{}\n"


def test_a_failed_first_save_raises_its_own_error_when_cleanup_has_nothing_to_do(tmp_path):
    import os
    import shutil

    path = tmp_path / "run"
    tmp = tmp_path / f".run.tmp-{os.getpid()}"

    class Vanishing:  # the temporary folder disappears, then writing the samples fails
        def __array__(self, *args, **kwargs):
            shutil.rmtree(tmp)
            raise ValueError("injected failure")

    with pytest.raises(ValueError, match="injected failure"):
        results.save_run(path, {"scenario": "latency"}, {"g0_i0_start_ns": Vanishing()})
    assert list(tmp_path.iterdir()) == []
