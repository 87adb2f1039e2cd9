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
