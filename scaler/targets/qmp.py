"""A minimal QMP (QEMU Machine Protocol) client: enough to pin vCPU threads and resume a VM.

The coordinator creates the QMP socket itself, already listening, and hands its descriptor to
QEMU (``-chardev socket,fd=N,server=on``). Connecting therefore succeeds at once, with no
race against QEMU creating a socket file and no retry loop: the connection simply waits in
the listen backlog until QEMU's main loop accepts it and sends its greeting. Every read has a
deadline, and a QEMU that exits first ends the wait (the caller races the greeting against
the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from scaler.errors import ScalerError


class QmpError(ScalerError):
    """QEMU refused a command or the monitor connection broke."""


SUN_PATH_MAX = 107  # bytes of a Unix socket's path the kernel takes (sun_path less its NUL)


@contextlib.contextmanager
def reachable(path: str) -> Iterator[str]:
    """``path``, or while the block runs a short alias of it through an open descriptor of its
    folder (``/proc/self/fd/N/name``) when it is longer than a socket address may be (deep
    temporary folders: a test's, a CI's)."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield path
        return
    folder = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


def listening_socket(path: str) -> socket.socket:
    """A Unix socket bound at ``path`` and listening, to pass to QEMU as its QMP monitor."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable(path) as address:
            sock.bind(address)
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


class Qmp:
    """One QMP session: ``await Qmp.connect(path, timeout)``, then ``await execute(...)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, path: str, timeout_s: float) -> Qmp:
        """Connect, read the greeting and negotiate capabilities, all within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            with reachable(path) as address:
                reader, writer = await asyncio.open_unix_connection(address, limit=1 << 22)
            qmp = cls(reader, writer)
            try:
                qmp.greeting = await qmp._read()
                if "QMP" not in qmp.greeting:
                    raise QmpError(f"not a QMP greeting: {qmp.greeting!r:.200}")
                await qmp.execute("qmp_capabilities")
            except BaseException:
                qmp.close()
                raise
        return qmp

    async def _read(self) -> dict[str, Any]:
        line = await self.reader.readline()
        if not line:
            raise QmpError("QEMU closed the QMP connection")
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            raise QmpError(f"bad QMP line: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise QmpError(f"bad QMP message: {message!r:.200}")
        return message

    async def execute(self, command: str, timeout_s: float = 30.0, **arguments: Any) -> Any:
        """Run one command; its ``return`` value, or QmpError with QEMU's description."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.writer.write(json.dumps(request).encode() + b"\n")
        async with asyncio.timeout(timeout_s):
            await self.writer.drain()
            while True:
                message = await self._read()
                if "event" in message:
                    self.events.append(message)
                    continue
                if "error" in message:
                    error = message["error"]
                    raise QmpError(f"QMP {command}: {error.get('desc', error)}")
                return message.get("return")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
