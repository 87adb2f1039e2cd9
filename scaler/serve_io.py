"""The fast path of the open-loop generator (``scaler.serving``): a worker's stream of
binary frames, a precise arrival clock, and which clock times a completion.

- ``Link``: reads a serving worker's stream in chunks (``protocol.FrameReader``: the done
  frames and the JSON lines between them) and writes query frames, so a turn of the event
  loop handles every frame that arrived, not one line.
- ``Ticker``: a thread that sleeps until the next scheduled arrival with the finest timer
  the kernel gives a thread (its timer slack set to 1 ns) and then asks the event loop to
  issue what is due. The event loop's own timers have a resolution of a millisecond
  (uvloop's, and the epoll timeout of asyncio's), which would put up to a millisecond of
  generator lag into every request's latency. For several instances the ticker only wakes
  the loop and the loop issues (which instance takes a request is the loop's decision);
  for one instance at batch 1 the ticker issues itself, straight into the worker's pipe
  (``PipeWriter``). Either way a coordinator that stalls shows as lag.
- ``halt``: ends the ticker at the end of a run while the workers' output is still read (a
  worker blocked on a full output pipe reads no input); what the ticker has not written is
  dropped, so the ``stop`` after it reaches the worker at once, however far over its
  capacity the run offered.
- ``shares_clock``: a worker on this machine's boot reads the coordinator's monotonic
  clock, so its own end-of-inference time is the completion time (no trip back through a
  pipe and an event loop in it); any other worker's completion is timed on receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from scaler.worker import protocol

PR_SET_TIMERSLACK = 29
LONGEST_SLEEP_S = 0.05  # the ticker looks at its halt flag at least this often


class Link:
    """A serving worker's protocol stream: query frames out, done frames and lines in."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.reader = protocol.FrameReader()
        self.failed: str | None = None  # why the worker failed, if heard while not listening

    def send(self, frame: bytes) -> None:
        stdin = self.worker.proc.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(frame)

    async def items(self) -> list[Any]:
        """Every frame and message that has arrived (at least one); ``WorkerFailed`` when
        the worker exits or reports an error."""
        from scaler.coordinator import WorkerFailed

        w = self.worker
        while True:
            data = await w.proc.stdout.read(1 << 16)
            if not data:
                code = await w._exit_code()
                raise WorkerFailed(f"exited with code {code} {w._stderr_hint()}".rstrip())
            self.reader.feed(data)
            got = list(self.reader.items())
            for item in got:
                if type(item) is dict and item["type"] == "error":
                    raise WorkerFailed(f"{item.get('kind', 'error')}: {item.get('message')}")
            if got:
                return got


def shares_clock(ready: dict[str, Any]) -> bool:
    """Whether a worker's monotonic clock is this process's (same boot of the same kernel)."""
    from scaler.hostfacts import boot_id

    mine = boot_id()
    return bool(mine) and ready.get("boot_id") == mine and \
        ready.get("clock") == "CLOCK_MONOTONIC"


def fine_timer_slack() -> bool:
    """Ask the kernel to wake this thread's sleeps on time (slack 1 ns instead of 50 µs)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class PipeWriter:
    """Query frames written straight to a worker's stdin pipe from the ticker thread (the
    event loop writes nothing to it while the ticker runs: ``serve`` before, ``stop``
    after). A full pipe keeps the rest pending for the next try; ``finish`` drops what was
    not written and completes a frame cut in half, so the event loop's ``stop`` is read as
    a line."""

    def __init__(self, fd: int, frame_size: int) -> None:
        self.fd, self.frame_size = fd, frame_size
        self.pending = bytearray()
        self.written = 0
        self.dropped = 0

    @classmethod
    def of(cls, stdin: Any, frame_size: int) -> PipeWriter | None:
        """For a worker's stdin (a StreamWriter) whose transport holds nothing unsent, or
        None (then the event loop writes)."""
        transport = getattr(stdin, "transport", None)
        if transport is None or transport.is_closing() or transport.get_write_buffer_size():
            return None
        # asyncio's transport holds the pipe; uvloop's a socket pair (a pseudo-socket)
        end = transport.get_extra_info("pipe") or transport.get_extra_info("socket")
        fileno = getattr(end, "fileno", None)
        return cls(fileno(), frame_size) if fileno is not None else None

    def write(self, data: bytes) -> None:
        self.pending += data
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes now; True when nothing is left."""
        while self.pending:
            try:
                n = os.write(self.fd, self.pending)
            except BlockingIOError:
                return False
            except OSError:  # the worker is gone: the event loop reports it
                self.pending.clear()
                return True
            del self.pending[:n]
            self.written += n
        return True

    def finish(self, within_s: float = 1.0) -> bool:
        """End the writes: the frames not written yet are dropped (counted in ``dropped``:
        requests issued that the worker never got), and the rest of a frame cut in half is
        written for up to ``within_s`` (the worker must read meanwhile: its output must be
        read). True when the stream ends on a whole frame (the event loop may write)."""
        cut = -self.written % self.frame_size  # bytes that complete a half-written frame
        self.dropped += (len(self.pending) - cut) // self.frame_size
        del self.pending[cut:]
        end = time.monotonic() + within_s
        while not self.flush() and time.monotonic() < end:
            time.sleep(0.0002)
        return not self.pending


class Ticker(threading.Thread):
    """Acts at each scheduled arrival (``schedule_ns``: absolute monotonic ns, sorted).

    Without ``direct`` it wakes the event loop there by calling ``issue``, at most one call
    pending at a time (the loop issues everything due when it runs it, however many
    arrivals that is). With ``direct(now_ns)`` (one instance, whose queries need no
    decision of the loop's) it issues in this thread itself, as LoadGen's issue thread does,
    writing through ``writer``: no hop through the event loop; ``direct`` returns the
    index of the first request not yet due."""

    def __init__(self, schedule_ns: Any, loop: asyncio.AbstractEventLoop,
                 issue: Callable[[], None], direct: Callable[[int], int] | None = None,
                 writer: PipeWriter | None = None) -> None:
        super().__init__(name="serve-ticker", daemon=True)
        self.schedule_ns = schedule_ns
        self.loop, self.issue = loop, issue
        self.direct, self.writer = direct, writer
        self.pending = False
        self.halted = False
        self.wakes = 0
        self.finish_s = 1.0  # how long the writer may take to complete a frame cut in half
        self.whole = True  # the writer ended on a whole frame

    def _issue(self) -> None:
        self.pending = False
        self.issue()

    def run(self) -> None:
        import numpy as np

        fine_timer_slack()
        clock, sched, count = time.monotonic_ns, self.schedule_ns, len(self.schedule_ns)
        writer = self.writer
        i = 0
        try:
            while i < count and not self.halted:
                backlog = writer is not None and not writer.flush()
                wait_ns = int(sched[i]) - clock()
                if wait_ns > 0:
                    time.sleep(min(wait_ns / 1e9, 0.0002 if backlog else LONGEST_SLEEP_S))
                    continue
                self.wakes += 1
                if self.direct is not None:
                    i = self.direct(clock())
                    continue
                if not self.pending:
                    self.pending = True
                    try:
                        self.loop.call_soon_threadsafe(self._issue)
                    except RuntimeError:  # the loop is closed: the run is over
                        return
                i = int(np.searchsorted(sched, clock(), "right"))
            while writer is not None and not self.halted and not writer.flush():
                time.sleep(0.0002)
        finally:
            if writer is not None:
                self.whole = writer.finish(self.finish_s)


async def halt(ticker: Ticker, links: list[Link], within_s: float) -> bool:
    """Stop the ticker, and read the workers' output (thrown away: the run has ended) until
    its thread is over: a worker blocked writing to a full output pipe reads no input, and
    the ticker's writer may have half a frame to complete (``PipeWriter.finish``) before
    anything else can be written to that worker. Waiting for the thread in the event
    loop's own thread would deadlock both for as long as it waits. True when the writer
    ended on a whole frame (a ``stop`` can follow)."""
    ticker.halted = True
    ticker.finish_s = within_s
    if not ticker.is_alive():
        return ticker.whole

    from scaler.coordinator import WorkerFailed

    async def discard(link: Link) -> None:
        try:
            while True:
                await link.items()
        except WorkerFailed as exc:  # the stop reports it
            link.failed = str(exc)

    readers = [asyncio.ensure_future(discard(link)) for link in links]
    try:
        await asyncio.to_thread(ticker.join, within_s + LONGEST_SLEEP_S + 1.0)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return ticker.whole and not ticker.is_alive()
