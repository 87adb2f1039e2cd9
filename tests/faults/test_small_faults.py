"""Small faults: damaged model files refused in the coordinator before anything starts,
``--target-qps 0`` refused like a negative rate, and two Ctrl-Cs in a row never a
traceback."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from scaler.engines.model_files import ModelFileError, check_model_file
from tests.scaler.helpers import ROOT, alive, scaler_cmd, worker_pids_of

NULL = ["--engine", "null", "--min-queries", "10", "--warmup", "0.1"]


@pytest.mark.parametrize("suffix,expected", [
    (".onnx", "not an ONNX model (its first bytes are not an ONNX ModelProto's)"),
    (".tflite", "not a TensorFlow Lite model (no 'TFL3' FlatBuffer identifier at byte 4)"),
    (".keras", "not a Keras 3 .keras archive (the file exists but is not a zip archive)"),
    (".xml", "not an OpenVINO IR (.xml with its .bin) (the file is not XML)"),
])
def test_random_bytes_are_refused_before_anything_starts(tmp_path, suffix, expected):
    model = tmp_path / f"model{suffix}"
    model.write_bytes(random.Random(7).randbytes(4096).replace(b"\x08", b"\x09", 1))
    out = tmp_path / "out"
    done = scaler_cmd("latency", "--model", str(model), "--min-duration", "0.2",
                      "--out", str(out), timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"scaler: error: model {model}: {expected}"
    assert "File not found" not in done.stderr
    assert not out.exists() or list(out.iterdir()) == []  # no run folder


def test_files_of_the_right_format_pass(tmp_path):
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    keras = tmp_path / "m.keras"
    with zipfile.ZipFile(keras, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
    xml = tmp_path / "m.xml"
    xml.write_text('<?xml version="1.0"?>\n<net name="m" version="11"><layers/></net>\n')
    (tmp_path / "m.bin").write_bytes(b"")
    for model in (tfl, keras, xml):
        check_model_file(str(model))
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    check_model_file(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short: the parse refuses it
    with pytest.raises(ModelFileError, match="not an ONNX model .it does not parse"):
        check_model_file(str(path))
    (tmp_path / "m.bin").unlink()
    with pytest.raises(ModelFileError, match="m.bin is missing beside it"):
        check_model_file(str(xml))
    with zipfile.ZipFile(keras, "w") as z:
        z.writestr("other.txt", "")
    with pytest.raises(ModelFileError, match="holds no config.json"):
        check_model_file(str(keras))


@pytest.mark.parametrize("rate", ["0", "-1"])
def test_a_rate_of_zero_is_refused_like_a_negative_one(rate):
    done = scaler_cmd("server", *NULL, f"--target-qps={rate}", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"scaler: error: --target-qps must be positive, not {rate}"


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_two_ctrl_cs_never_print_a_traceback(tmp_path):
    """Two SIGINTs at varied delays (before the workers start, while they measure, while
    the run stops), 10 times, the first SIGINT's moments spread evenly over the run's 2.5 s
    (one in each quarter of a second past 0.3 s, jittered): an interruption or a result,
    never a traceback, no worker left."""
    rng = random.Random(30)
    tries = 10
    for k in range(tries):
        first = 0.3 + (k + rng.random()) * (2.5 - 0.3) / tries
        gap = rng.choice([0.0, 0.01, 0.05, 0.2, 0.5])
        proc = subprocess.Popen(
            [sys.executable, "-m", "scaler", "scaling", *NULL, "--instances", "1-2",
             "--placement", "pinned", "--min-duration", "1", "--out", str(tmp_path / "out")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, start_new_session=True,
            # a SIGINT while the interpreter itself starts (site, encodings) is Python's, not
            # scaler's: ignored until scaler's own code installs its handler
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        workers: set[int] = set()
        try:
            deadline = time.monotonic() + first
            while time.monotonic() < deadline and proc.poll() is None:
                workers |= set(worker_pids_of(proc.pid))
                time.sleep(0.02)
            for second in (False, True):
                if second:
                    time.sleep(gap)  # nothing to wait for after the second
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        what = f"try {k}: SIGINT at {first:.2f} s, again {gap} s later"
        assert "Traceback" not in err and "Exception ignored" not in err, f"{what}:\n{err}"
        assert proc.returncode in (0, 130), f"{what}: exit {proc.returncode}\n{err}\n{out}"
        gone = time.monotonic() + 0.2  # the same 0.2 s of grace, not spent when they are gone
        while [w for w in workers if alive(w)] and time.monotonic() < gone:
            time.sleep(0.01)
        assert not [w for w in workers if alive(w)], what
