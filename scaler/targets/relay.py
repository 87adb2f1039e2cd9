"""A worker process seen through relays, for targets whose child is not the worker itself.

A VM's child is QEMU and an SSH target's child is ``ssh``. The coordinator only needs the
``asyncio.subprocess.Process`` surface (stdin, stdout, stderr, pid, returncode, wait, kill),
so a target can hand it a :class:`RelayedProcess` instead, which

- cleans and labels the diagnostics stream (a serial console carries terminal escapes and
  carriage returns; a fleet's lines must say which host they come from),
- keeps the last lines, and when the child ends may append one summary line (the coordinator
  quotes the last stderr line in its error, and "reboot: Power down" says nothing),
- notes when the first protocol line arrives (a VM's boot-to-ready time), and may hand that
  line to the target first (``first_message``: a VM target checks the guest's ``ready``
  report and may turn it into an ``error``),
- may take lines off the diagnostics stream for the target (``consume``: a VM's periodic
  CPU-time lines), so they neither flood the tail nor reach the coordinator.

Both relays are plain tasks that read until end of file; nothing polls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
from collections.abc import Callable

from scaler.targets import STREAM_LIMIT
from scaler.worker.protocol import PREFIX

_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f]")
_PROTOCOL = PREFIX.encode()


def clean_line(raw: bytes) -> str:
    """A console line without terminal escapes, control characters or trailing space."""
    return _ANSI.sub(b"", raw.replace(b"\r", b"")).decode(errors="replace").rstrip()


class RelayedProcess:
    """The coordinator's view of a child whose streams are relayed (see the module doc)."""

    def __init__(self, proc: asyncio.subprocess.Process, label: str = "",
                 summary: Callable[[RelayedProcess, int | None], str | None] | None = None,
                 tail_lines: int = 200, stderr: asyncio.StreamReader | None = None,
                 first_message: Callable[[bytes], bytes] | None = None,
                 consume: Callable[[str], bool] | None = None) -> None:
        self._proc = proc
        self.first_message = first_message
        self.consume = consume
        self._stderr_source = stderr if stderr is not None else proc.stderr
        self.label = label
        self.summary = summary
        self.started = time.monotonic()
        self.first_message_at: float | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.stdin = proc.stdin
        self.stdout = asyncio.StreamReader(limit=STREAM_LIMIT)
        self.stderr = asyncio.StreamReader(limit=STREAM_LIMIT)
        self._relays = [asyncio.ensure_future(self._relay_stdout()),
                        asyncio.ensure_future(self._relay_stderr())]

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    async def wait(self) -> int:
        """The child's exit code, once both relays have passed on everything it wrote."""
        code = await self._proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*self._relays, return_exceptions=True)
        return code

    async def _relay_stdout(self) -> None:
        """Protocol bytes as they come; line by line only until the first protocol line."""
        source = self._proc.stdout
        assert source is not None
        try:
            while self.first_message_at is None:
                line = await source.readline()
                if not line:
                    return
                if _PROTOCOL in line:
                    self.first_message_at = time.monotonic()
                    if self.first_message is not None:
                        line = self.first_message(line)
                self.stdout.feed_data(line)
            while chunk := await source.read(1 << 16):
                self.stdout.feed_data(chunk)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:
            self.tail.append(f"relay: protocol stream broke: {exc}")
        finally:
            self.stdout.feed_eof()

    async def _relay_stderr(self) -> None:
        source = self._stderr_source
        assert source is not None
        try:
            async for raw in source:
                line = clean_line(raw)
                if not line or (self.consume is not None and self.consume(line)):
                    continue
                self.tail.append(line)
                self.stderr.feed_data(f"{self.label}{line}\n".encode())
        except (ValueError, ConnectionError) as exc:
            self.tail.append(f"relay: diagnostics stream broke: {exc}")
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10.0):
                    code = await self._proc.wait()
                extra = self.summary(self, code) if self.summary else None
                if extra:
                    self.stderr.feed_data(f"{self.label}{extra}\n".encode())
            self.stderr.feed_eof()
