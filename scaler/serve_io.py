"""The fast path of the open-loop generator (``scaler.serving``): a worker's stream of
binary frames, a precise arrival clock, and which clock times a completion.

- ``Link``: reads a serving worker's stream in chunks (``protocol.FrameReader``: the done
  frames and the JSON lines between them) and writes query frames, so a turn of the event
  loop handles every frame that arrived, not one line.
- ``Ticker``: a thread that sleeps until the next scheduled arrival with the finest timer
  the kernel gives a thread (its timer slack set to 1 ns) and then asks the event loop to
  issue what is due. The event loop's own timers have a resolution of a millisecond
  (uvloop's, and the epoll timeout of asyncio's), which would put up to a millisecond of
  generator lag into every request's latency. The ticker only wakes the loop; the loop
  issues, so a loop that stalls still shows as lag (latency counts from the schedule).
- ``shares_clock``: a worker on this machine's boot reads the coordinator's monotonic
  clock, so its own end-of-inference time is the completion time (no trip back through a
  pipe and an event loop in it); any other worker's completion is timed on receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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
    from scaler.worker.main import boot_id

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


class Ticker(threading.Thread):
    """Wakes the event loop at each scheduled arrival (``schedule_ns``: absolute monotonic
    ns, sorted) by calling ``issue`` there; at most one call is pending at a time (the loop
    issues everything due when it runs it, however many arrivals that is)."""

    def __init__(self, schedule_ns: Any, loop: asyncio.AbstractEventLoop,
                 issue: Callable[[], None]) -> None:
        super().__init__(name="serve-ticker", daemon=True)
        self.schedule_ns = schedule_ns
        self.loop, self.issue = loop, issue
        self.pending = False
        self.halted = False
        self.wakes = 0

    def _issue(self) -> None:
        self.pending = False
        self.issue()

    def run(self) -> None:
        import numpy as np

        fine_timer_slack()
        clock, sched, count = time.monotonic_ns, self.schedule_ns, len(self.schedule_ns)
        i = 0
        while i < count and not self.halted:
            wait_ns = int(sched[i]) - clock()
            if wait_ns > 0:
                time.sleep(min(wait_ns / 1e9, LONGEST_SLEEP_S))
                continue
            if not self.pending:
                self.pending = True
                self.wakes += 1
                try:
                    self.loop.call_soon_threadsafe(self._issue)
                except RuntimeError:  # the loop is closed: the run is over
                    return
            i = int(np.searchsorted(sched, clock(), "right"))

    def halt(self) -> None:
        self.halted = True
        self.join(timeout=2 * LONGEST_SLEEP_S + 1.0)
