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
query's start and end), ``served`` (how many queries ran, how many a ``stop`` dropped before
they started), ``error``, ``bye``.
Messages to the worker: ``start`` (closed loop, with the stop rule's limits: ``report_at``,
``stop_at``, ``until_ns``; see ``scaler.stoprule``), ``limits`` (new limits), ``serve``
(then ``query`` frames, each answered by a ``done`` frame), ``stop``, ``exit``.
Sample arrays travel as base64 of little-endian int64 (compact, no pickle).

The server scenario's hot path (``query`` and ``done``, one each per request) travels as
fixed-size binary frames between the JSON lines: a NUL byte (which never starts a protocol
line), a type byte and little-endian fields (``QUERY``: id, requests; ``DONE``: id, start
and end of the inference on the worker's monotonic clock in ns). Both a pipe, an SSH channel
and a VM's virtio-serial port carry them as they are; ``FrameReader`` splits a stream of
both kinds.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import IO, Any

from scaler.worker.spec import WorkerSpec

PREFIX = "@scaler "
PROTOCOL_VERSION = 5  # 2: samples in chunks while measuring; 3: binary serve frames; 4: limits;
# 5: a stop while serving drops the queries not started (``served``: queries, dropped)
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


QUERY = struct.Struct("<2sqi")  # b"\0Q", query id, requests in it
DONE = struct.Struct("<2sqqq")  # b"\0D", query id, t0 ns, t1 ns
QUERY_TAG, DONE_TAG = b"\0Q", b"\0D"
_FRAME_SIZE = {QUERY_TAG[1]: QUERY.size, DONE_TAG[1]: DONE.size}


def query_frame(query_id: int, requests: int) -> bytes:
    return QUERY.pack(QUERY_TAG, query_id, requests)


def done_frame(query_id: int, t0_ns: int, t1_ns: int) -> bytes:
    return DONE.pack(DONE_TAG, query_id, t0_ns, t1_ns)


class FrameReader:
    """Splits a byte stream of binary frames and protocol lines: ``items()`` yields a tuple
    for each complete frame (``QUERY``/``DONE``'s fields without the tag: the tag's type
    letter first) and a dict for each protocol line (lines that are not protocol messages
    are skipped); an incomplete tail waits for the next ``feed``."""

    def __init__(self, data: bytes = b"") -> None:
        self.buf = bytearray(data)

    def feed(self, data: bytes) -> None:
        self.buf += data

    def rest(self) -> bytes:
        return bytes(self.buf)

    def items(self) -> Any:
        buf, i, end = self.buf, 0, len(self.buf)
        try:
            while i < end:
                if buf[i] == 0:
                    if i + 1 >= end:
                        break
                    size = _FRAME_SIZE.get(buf[i + 1])
                    if size is None:
                        raise ValueError(f"unknown frame type {buf[i + 1]!r}")
                    if i + size > end:
                        break
                    if size == DONE.size:
                        _, a, b, c = DONE.unpack_from(buf, i)
                        item: Any = ("D", a, b, c)
                    else:
                        _, a, b = QUERY.unpack_from(buf, i)
                        item = ("Q", a, b)
                    i += size
                    yield item
                    continue
                nl = buf.find(b"\n", i)
                if nl < 0:
                    break
                line, i = bytes(buf[i:nl + 1]), nl + 1
                message = decode(line)
                if message is not None:
                    yield message
        finally:
            del buf[:i]


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
