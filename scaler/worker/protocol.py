"""The worker protocol: JSON lines, one object per line.

The worker writes its messages to a private duplicate of fd 1 and points fd 1 at fd 2, so
whatever native libraries print cannot corrupt the protocol. The same byte stream works for a
local child, over SSH and over a VM's serial console: a reader skips lines that are not
protocol objects (a console also carries kernel messages), which is why every protocol line
starts with ``PREFIX``.

Messages from the worker: ``ready``, ``started``, ``progress``, ``chunk`` (the samples
recorded since the last chunk, about once a second, so a worker that dies keeps what it
measured), ``reached`` (its count reached the ``report_at`` limit), ``halted`` (its limits
ended the window), ``capped``, ``samples`` (the rest, and the total), ``done`` (a served
query's start and end), ``served``, ``error``, ``bye``.
Messages to the worker: ``start`` (closed loop, with the stop rule's limits: ``report_at``,
``stop_at``, ``until_ns``; see ``scaler.stoprule``), ``limits`` (new limits), ``serve``
(then ``query`` messages, each answered by ``done``), ``stop``, ``exit``.
Sample arrays travel as base64 of little-endian int64 (compact, no pickle).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from array import array
from dataclasses import dataclass
from typing import IO, Any

from scaler.worker.spec import WorkerSpec

PREFIX = "@scaler "
PROTOCOL_VERSION = 3  # 2: samples travel in chunks while measuring; 3: stop-rule limits
# longest protocol line a reader accepts: a ``samples`` message carries every query's times
STREAM_LIMIT = 1 << 28


@dataclass(frozen=True)
class WorkerRequest:
    """One instance of a group as a target starts it: the worker's spec (in the worker's own
    CPU numbering) and the partition it owns on the machine that runs it (for results, and
    for targets that confine it there: a VM's vCPUs). ``host`` names the machine of a fleet."""

    index: int
    spec: WorkerSpec
    partition: dict[str, Any] | None  # {"cpus": [...], "nodes": [...]} or None (unpinned)
    host: str | None = None


def encode(message: dict[str, Any]) -> bytes:
    return (PREFIX + json.dumps(message, separators=(",", ":")) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any] | None:
    """A protocol message, or None for a line that is not one (console noise)."""
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    text = text.strip().lstrip("\r")
    at = text.find(PREFIX)
    if at < 0:
        return None
    try:
        message = json.loads(text[at + len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) and "type" in message else None


def pack_int64(values: array) -> str:
    data = values if sys.byteorder == "little" else _swapped(values)
    return base64.b64encode(data.tobytes()).decode()


def unpack_int64(text: str) -> array:
    values = array("q")
    values.frombytes(base64.b64decode(text))
    return values if sys.byteorder == "little" else _swapped(values)


def _swapped(values: array) -> array:
    copy = array("q", values)
    copy.byteswap()
    return copy


def split_stdout() -> IO[bytes]:
    """Move the protocol to a private fd and send fd 1 to stderr; returns the protocol stream."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "wb", buffering=0)
