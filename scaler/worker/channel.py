"""The worker's end of the protocol: messages out on the private fd, commands in from stdin on
a reader thread that applies ``start``, ``limits`` and ``stop`` as they arrive (the timed loop
reads them without waiting) and hands the stream to ``serve_loop`` while it serves."""

from __future__ import annotations

import queue
import sys
import threading
from typing import IO, Any

from scaler.worker import protocol
from scaler.worker.loop import Limits


class Channel:
    """Protocol messages out on the private fd; commands in from stdin on a reader thread
    (which hands the stream to ``serve_loop`` while it serves: ``take_input``/``give_back``)."""

    def __init__(self, out: IO[bytes], source: IO[bytes] | None = None) -> None:
        self.out = out
        self.source = source if source is not None else sys.stdin.buffer
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.rest = bytearray()  # read but not yet handled
        self._handed_back = threading.Event()
        self.limits = Limits()
        threading.Thread(target=self._read, name="protocol-reader", daemon=True).start()

    def send(self, type_: str, **fields: Any) -> None:
        self.write(protocol.encode({"type": type_, **fields}))

    def write(self, raw: bytes | bytearray) -> None:
        data = memoryview(raw)
        while data:  # a raw write may be partial: a VM's virtio-serial port takes 32 KiB a call
            data = data[self.out.write(data):]

    def read_input(self) -> bytes:
        return self.source.read1(1 << 16)

    def take_input(self) -> bytes:
        """For ``serve_loop``: what the reader thread read past ``serve`` (it now waits)."""
        data, self.rest = bytes(self.rest), bytearray()
        return data

    def give_back(self, rest: bytes, ended: str) -> None:
        """From ``serve_loop``: the bytes it read past its end; the reader thread resumes."""
        self.rest = bytearray(rest)
        if ended:
            self.stop.set()
        self._handed_back.set()

    def _read(self) -> None:
        while True:
            nl = self.rest.find(b"\n")
            if nl < 0:
                chunk = self.read_input()
                if not chunk:
                    break
                self.rest += chunk
                continue
            line = bytes(self.rest[:nl + 1])
            del self.rest[:nl + 1]
            message = protocol.decode(line)
            if message is None:
                continue
            if message["type"] == "start":  # cleared here, in order with the stop after it
                self.stop.clear()
                self.limits.reset(message)
            elif message["type"] == "limits":  # read by the timed loop, not by wait_for
                self.limits.update(message)
                continue
            elif message["type"] in ("stop", "exit"):
                self.stop.set()
            if message["type"] == "serve":  # serve_loop reads the stream until it ends
                self._handed_back.clear()
                self.inbox.put(message)
                self._handed_back.wait()
                continue
            self.inbox.put(message)
        self.stop.set()  # EOF: the coordinator is gone
        self.inbox.put({"type": "eof"})

    def wait_for(self, *types: str) -> dict[str, Any]:
        while True:
            message = self.inbox.get()
            if message["type"] in types or message["type"] == "eof":
                return message
