"""A user's model file checked in the coordinator before anything starts: its bytes must be
the format its name says (a damaged or foreign file is one line naming the format expected,
exit 2, rather than an engine's error from inside a worker after a run folder exists).

Each format by what identifies it: ``.tflite`` a FlatBuffer with the ``TFL3`` identifier,
``.keras`` a zip archive holding ``config.json``, ``.xml`` an OpenVINO IR (XML with a
``<net>`` root) with its ``.bin`` beside it, ``.onnx`` an ONNX ``ModelProto`` (parsed by
``onnx`` where it is installed, else its first field), a SavedModel folder its
``saved_model.pb``.
"""

from __future__ import annotations

import os
import zipfile

from scaler.engines.base import EngineError


class ModelFileError(EngineError):
    """A model file that is not what its name says (bad input: exit code 2)."""

    exit_code = 2


def check_model_file(model: str) -> None:
    """ModelFileError when ``model`` is a path whose contents are not its format."""
    if not os.path.exists(model):
        return  # a built-in name, or a missing path the engine checks refuse already
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "saved_model.pb")):
            return  # not a SavedModel: model_kind says what it is not
        _check_size(model, os.path.join(model, "saved_model.pb"), "SavedModel", 1)
        return
    suffix = os.path.splitext(model)[1].lower()
    check = _CHECKS.get(suffix)
    if check is not None:
        check(model)


def _refuse(model: str, expected: str, why: str) -> None:
    shown = model if len(model) <= 120 else "..." + model[-117:]
    raise ModelFileError(f"model {shown}: not {expected} ({why})")


def _head(model: str, n: int) -> bytes:
    try:
        with open(model, "rb") as f:
            return f.read(n)
    except OSError as exc:
        _refuse(model, "a readable file", exc.strerror or str(exc))
        return b""


def _check_size(model: str, path: str, expected: str, least: int) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        _refuse(model, expected, exc.strerror or str(exc))
        return
    if size < least:
        _refuse(model, expected, f"{os.path.basename(path)} is {size} bytes")


def _tflite(model: str) -> None:
    head = _head(model, 8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        _refuse(model, "a TensorFlow Lite model", "no 'TFL3' FlatBuffer identifier at byte 4")


def _keras(model: str) -> None:
    expected = "a Keras 3 .keras archive"
    if not zipfile.is_zipfile(model):
        _refuse(model, expected, "the file exists but is not a zip archive")
    try:
        with zipfile.ZipFile(model) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        _refuse(model, expected, f"a damaged zip archive: {exc}")
        return
    if "config.json" not in names:
        _refuse(model, expected, "the zip archive holds no config.json")


def _xml(model: str) -> None:
    expected = "an OpenVINO IR (.xml with its .bin)"
    head = _head(model, 4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        _refuse(model, expected, "the file is not XML")
    if b"<net" not in head:
        _refuse(model, expected, "no <net> element at the start of the file")
    weights = os.path.splitext(model)[0] + ".bin"
    if not os.path.isfile(weights):
        _refuse(model, expected, f"{os.path.basename(weights)} is missing beside it")


def _onnx(model: str) -> None:
    expected = "an ONNX model"
    head = _head(model, 1)
    if head != b"\x08":  # ModelProto field 1 (ir_version, varint) comes first
        _refuse(model, expected, "its first bytes are not an ONNX ModelProto's")
    try:
        import onnx
    except ImportError:
        return
    try:
        onnx.load(model, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and the like: not a model
        if isinstance(exc, MemoryError):
            raise
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        _refuse(model, expected, f"it does not parse: {text}")


_CHECKS = {".tflite": _tflite, ".keras": _keras, ".xml": _xml, ".onnx": _onnx}
