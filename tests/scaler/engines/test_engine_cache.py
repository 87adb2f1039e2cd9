"""The converted-model cache without TensorFlow: validity, crashes and the build lock."""

from __future__ import annotations

import json
import threading
import time

import pytest

from scaler.engines import cache


def writer(payload: bytes, calls: list[str]):
    def build(tmp):
        calls.append(tmp.name)
        tmp.write_bytes(payload)
        return {"made_by": "test"}

    return build


def test_miss_then_hit(tmp_path):
    path, calls = tmp_path / "m.tflite", []
    meta, outcome = cache.get_or_build(path, writer(b"model", calls))
    assert outcome == "miss" and path.read_bytes() == b"model"
    assert meta == json.loads(path.with_suffix(".json").read_text())
    assert meta["size"] == 5 and meta["made_by"] == "test"
    assert cache.get_or_build(path, writer(b"other", calls)) == (meta, "hit")
    assert len(calls) == 1
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_sidecar", "bad_sidecar"])
def test_damaged_entry_is_rebuilt(tmp_path, damage):
    path, calls = tmp_path / "m.tflite", []
    cache.get_or_build(path, writer(b"model", calls))
    sidecar = path.with_suffix(".json")
    if damage == "flip":
        path.write_bytes(b"modeL")
    elif damage == "truncate":
        path.write_bytes(b"mod")
    elif damage == "no_sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("{")
    assert cache.read_entry(path) is None
    meta, outcome = cache.get_or_build(path, writer(b"model", calls))
    assert outcome == "rebuilt" and len(calls) == 2 and cache.read_entry(path) == meta


def test_crash_mid_build_leaves_no_entry(tmp_path):
    """A build that dies leaves neither a model nor a temp file; a crashed process's temp
    file is swept by the next build."""
    path = tmp_path / "m.tflite"

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("converter died")

    with pytest.raises(RuntimeError):
        cache.get_or_build(path, crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]
    (tmp_path / ".m.tflite.killed.tmp").write_bytes(b"half")  # as SIGKILL would leave it
    _, outcome = cache.get_or_build(path, writer(b"model", []))
    assert outcome == "miss"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.lock", "m.tflite"]


def test_concurrent_builders_build_once(tmp_path):
    """A second builder arriving mid-build waits on the lock, then hits."""
    path, calls, building = tmp_path / "m.tflite", [], threading.Event()

    def slow(tmp):
        building.set()
        time.sleep(0.3)
        return writer(b"model", calls)(tmp)

    outcomes = []
    first = threading.Thread(target=lambda: outcomes.append(cache.get_or_build(path, slow)[1]))
    first.start()
    assert building.wait(10)
    second = cache.get_or_build(path, writer(b"other", calls))[1]
    first.join(10)
    assert (outcomes, second, len(calls)) == (["miss"], "hit", 1)
    assert path.read_bytes() == b"model"


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.delenv("SCALER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root(None) == tmp_path / "xdg" / "scaler"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root(None) == tmp_path / "home" / ".cache" / "scaler"
    monkeypatch.setenv("SCALER_CACHE_DIR", str(tmp_path / "env"))
    assert cache.cache_root(None) == tmp_path / "env"
    assert cache.cache_root(str(tmp_path / "spec")) == tmp_path / "spec"


def folder_writer(files: dict[str, bytes], calls: list[str]):
    def build(tmp):
        assert tmp.is_dir() and not list(tmp.iterdir())
        calls.append(tmp.name)
        for name, payload in files.items():
            (tmp / name).write_bytes(payload)
        return {"made_by": "test"}

    return build


IR = {"model.xml": b"<net/>", "model.bin": b"weights"}


def test_folder_entry_miss_then_hit(tmp_path):
    path, calls = tmp_path / "m.ir", []
    meta, outcome = cache.get_or_build(path, folder_writer(IR, calls), folder=True)
    assert outcome == "miss" and sorted(p.name for p in path.iterdir()) == sorted(IR)
    assert meta == json.loads((tmp_path / "m.json").read_text())
    assert meta["files"]["model.bin"] == {"size": 7, "sha256": cache.sha256_file(
        path / "model.bin")}
    assert cache.get_or_build(path, folder_writer({}, calls), folder=True) == (meta, "hit")
    assert len(calls) == 1
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "extra", "no_sidecar",
                                    "bad_sidecar", "file_instead"])
def test_damaged_folder_entry_is_rebuilt(tmp_path, damage):
    path, calls = tmp_path / "m.ir", []
    cache.get_or_build(path, folder_writer(IR, calls), folder=True)
    sidecar = tmp_path / "m.json"
    if damage == "flip":
        (path / "model.bin").write_bytes(b"weightS")
    elif damage == "truncate":
        (path / "model.bin").write_bytes(b"wei")
    elif damage == "missing":
        (path / "model.bin").unlink()
    elif damage == "extra":
        (path / "stray.bin").write_bytes(b"")
    elif damage == "no_sidecar":
        sidecar.unlink()
    elif damage == "bad_sidecar":
        sidecar.write_text('{"files": 3}')
    else:
        for file in path.iterdir():
            file.unlink()
        path.rmdir()
        path.write_bytes(b"not a folder")
    assert cache.read_entry(path) is None
    meta, outcome = cache.get_or_build(path, folder_writer(IR, calls), folder=True)
    assert outcome == "rebuilt" and len(calls) == 2 and cache.read_entry(path) == meta
    assert sorted(p.name for p in path.iterdir()) == sorted(IR)


def test_crash_mid_folder_build_leaves_no_entry(tmp_path):
    path = tmp_path / "m.ir"

    def crash(tmp):
        (tmp / "model.xml").write_bytes(b"<net")
        raise RuntimeError("converter died")

    with pytest.raises(RuntimeError):
        cache.get_or_build(path, crash, folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]
    stale = tmp_path / ".m.ir.killed.tmp"  # as SIGKILL would leave it
    stale.mkdir()
    (stale / "model.xml").write_bytes(b"<net")
    _, outcome = cache.get_or_build(path, folder_writer(IR, []), folder=True)
    assert outcome == "miss"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ir", "m.json", "m.lock"]


def test_concurrent_folder_builders_build_once(tmp_path):
    path, calls, building = tmp_path / "m.ir", [], threading.Event()

    def slow(tmp):
        building.set()
        time.sleep(0.3)
        return folder_writer(IR, calls)(tmp)

    outcomes = []
    first = threading.Thread(target=lambda: outcomes.append(
        cache.get_or_build(path, slow, folder=True)[1]))
    first.start()
    assert building.wait(10)
    second = cache.get_or_build(path, folder_writer({"other": b""}, calls), folder=True)[1]
    first.join(10)
    assert (outcomes, second, len(calls)) == (["miss"], "hit", 1)
    assert sorted(p.name for p in path.iterdir()) == sorted(IR)
