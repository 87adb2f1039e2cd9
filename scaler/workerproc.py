"""A worker process as the coordinator holds it: its protocol streams and stderr tail, how it
is asked to exit or killed with its process group, and the pool of warm workers kept between
the groups of one scenario."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
from typing import Any

from scaler.targets import Target
from scaler.worker import protocol
from scaler.worker.protocol import WorkerRequest

STDERR_TAIL_LINES = 40


class WorkerFailed(Exception):
    pass


class Worker:
    """One running worker process and its protocol streams."""

    def __init__(self, request: WorkerRequest, proc: asyncio.subprocess.Process) -> None:
        self.request = request
        self.proc = proc
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def send(self, type_: str, **fields: Any) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(protocol.encode({"type": type_, **fields}))

    async def recv(self) -> dict[str, Any]:
        """The next protocol message; WorkerFailed when the worker exits or reports an error."""
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                code = await self._exit_code()
                raise WorkerFailed(f"exited with code {code} {self._stderr_hint()}".rstrip())
            message = protocol.decode(line)
            if message is None:
                continue
            if message["type"] == "error":
                raise WorkerFailed(f"{message.get('kind', 'error')}: {message.get('message')}")
            return message

    async def _exit_code(self) -> int | None:
        with contextlib.suppress(asyncio.TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), 5.0)
        return None

    def _stderr_hint(self) -> str:
        tail = [line for line in self.stderr_tail if line.strip()]
        return f"(stderr: {tail[-1].strip()[:200]})" if tail else ""

    async def close(self, grace_s: float = 2.0) -> None:
        """Ask the worker to exit; kill its process group if it does not within ``grace_s``.
        Whatever the worker forked and left behind in its group (a library's helper process
        that outlives it: openvino's telemetry did) is killed once the worker has gone."""
        if self.proc.returncode is None:
            self.send("exit")
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.kill()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives its leader
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._stderr_task, 2.0)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class WorkerPool:
    """Warm workers kept between the groups of one scenario.

    Starting a TensorFlow worker (import, model build, tracing, warm-up) costs seconds of CPU,
    and a 1..8 sweep that starts fresh workers for every N spends most of its time there. A
    worker that finished a group cleanly is kept idle (blocked on its stdin: no CPU) and
    handed to a later group that asks for exactly the same instance: same target, arguments
    and partition. Idle workers that the next group does not want are closed before it starts.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[Any, ...], list[tuple[Worker, dict[str, Any]]]] = {}

    @staticmethod
    def _key(target: Target, request: WorkerRequest) -> tuple[Any, ...]:
        return (id(target), request.spec, request.host,
                json.dumps(request.partition, sort_keys=True))

    def take(self, target: Target, request: WorkerRequest
             ) -> tuple[Worker, dict[str, Any]] | None:
        found = self._idle.get(self._key(target, request))
        while found:
            worker, ready = found.pop()
            if worker.proc.returncode is None:
                return worker, ready
        return None

    def put(self, target: Target, request: WorkerRequest, worker: Worker,
            ready: dict[str, Any]) -> None:
        self._idle.setdefault(self._key(target, request), []).append((worker, ready))

    async def release_except(self, target: Target, requests: list[WorkerRequest]) -> None:
        """Close the idle workers that none of ``requests`` wants (frees their memory before
        the next group's memory check and start)."""
        wanted = {self._key(target, r) for r in requests}
        unwanted = [w for key, entries in self._idle.items() if key not in wanted
                    for w, _ in entries]
        self._idle = {k: v for k, v in self._idle.items() if k in wanted}
        await close_workers(unwanted)

    async def close(self) -> None:
        idle = [w for entries in self._idle.values() for w, _ in entries]
        self._idle.clear()
        await close_workers(idle)


async def close_workers(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
