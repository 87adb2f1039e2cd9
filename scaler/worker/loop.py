"""The worker's timed loop: queries back to back, each one's start and end time recorded,
the coordinator's stop rule applied as it arrives (``Limits``), the samples sent in chunks
on the way and at the end."""

from __future__ import annotations

import threading
import time
from array import array
from typing import TYPE_CHECKING, Any

from scaler.worker import protocol

if TYPE_CHECKING:
    from scaler.worker.channel import Channel

NEVER = 1 << 62  # a count or a time never reached
LATE_NS = 1_000_000  # beginning within this of the common start is beginning on it


class Limits:
    """The coordinator's stop rule as one worker applies it (``start`` and ``limits``
    messages set it, from the protocol reader thread): report ``reached`` when the worker's
    count reaches ``report_at``; halt at the end of the first query where the count is at
    least ``stop_at`` AND the clock has passed ``until_ns`` (the window's minimum duration,
    in this worker's clock). The coordinator sets them so that a halt means the group's
    rules are met and a report comes before the group's count could meet them.

    ``gate[0]`` is the count at which the timed loop next looks at the limits (one compare
    a query); an update sets it to 0 so the loop looks at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gate = [NEVER]
        self.report_at = self.stop_at = NEVER
        self.until_ns: int | None = None
        self.late_ns = 0  # began this late after the common start: its window is as late

    def reset(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.report_at = self.stop_at = NEVER
            self.until_ns = None
            self.late_ns = 0
        self.update(message)

    def update(self, message: dict[str, Any]) -> None:
        with self.lock:
            for key in ("report_at", "stop_at"):
                if key in message:
                    value = message[key]
                    setattr(self, key, NEVER if value is None else int(value))
            if "until_ns" in message:
                value = message["until_ns"]
                self.until_ns = None if value is None else int(value)
            self.gate[0] = 0

    def check(self, done: int, now_ns: int) -> tuple[bool, bool, int]:
        """After a query: (report now, halt now, when to look again by the clock)."""
        with self.lock:
            reached = done >= self.report_at
            if reached:
                self.report_at = NEVER  # until the coordinator answers
            count_met = done >= self.stop_at
            until = NEVER if self.until_ns is None else self.until_ns + self.late_ns
            halt = count_met and now_ns >= until
            self.gate[0] = self.report_at if count_met else min(self.report_at, self.stop_at)
            return reached, halt, until if count_met else NEVER


class Recorder:
    """Per-query start and end times in preallocated arrays (grown by doubling, rarely).

    While measuring, the queries recorded so far are sent as a ``chunk`` every ``chunk_s``
    and the arrays are reused from the start: ``sent`` counts what already left, ``count``
    what is still held."""

    def __init__(self, capacity: int = 1 << 14) -> None:
        self.start_ns = array("q", bytes(8 * capacity))
        self.end_ns = array("q", bytes(8 * capacity))
        self.count = 0
        self.sent = 0

    @property
    def total(self) -> int:
        return self.sent + self.count

    def trimmed(self) -> tuple[array, array]:
        return self.start_ns[: self.count], self.end_ns[: self.count]


def timed_loop(engine: Any, inputs: Any, stop: threading.Event, channel: Channel | None,
               progress_s: float, max_queries: int, until_ns: int | None = None,
               chunk_s: float = 0.0, limits: Limits | None = None,
               begin_ns: int | None = None) -> Recorder:
    """Run queries back to back until ``stop`` is set, ``max_queries`` are done, the clock
    passes ``until_ns`` or ``limits`` say to halt, recording each one. With a channel:
    ``progress`` every ``progress_s``, ``reached`` at the query where the count reaches the
    limits' ``report_at``, ``halted`` when the limits end the window and, when ``chunk_s`` >
    0, the samples so far as a ``chunk`` every ``chunk_s`` (sent at a progress point). The
    loop itself compares one clock reading and one count a query; the rest waits for them.
    With ``begin_ns`` the first query starts when the clock reaches it (a common start)."""
    rec = Recorder()
    infer = engine.infer
    clock = time.monotonic_ns
    is_stopped = stop.is_set
    starts, ends = rec.start_ns, rec.end_ns
    capacity = len(starts)
    progress_ns = int(progress_s * 1e9)
    chunk_ns = int(chunk_s * 1e9)
    limits = limits if limits is not None else Limits()
    gate = limits.gate
    if begin_ns is not None:
        wait_until(int(begin_ns), stop)
    began = clock()
    if begin_ns is not None:
        late = began - int(begin_ns)  # woken late (a busy machine): its window is as late
        limits.late_ns = late if late > LATE_NS else 0
    next_progress = clock() + progress_ns
    next_wake = next_progress  # the earlier of the next progress and the limits' time
    limit_wake = NEVER
    next_chunk = clock() + chunk_ns if chunk_ns > 0 and channel is not None else None
    if channel is not None:
        channel.send("started", t_ns=began)
    i = 0
    sent = 0
    halted = False
    while not is_stopped() and sent + i < max_queries:
        t0 = clock()
        infer(inputs)
        t1 = clock()
        starts[i] = t0
        ends[i] = t1
        i += 1
        if i == capacity:
            starts.extend(array("q", bytes(8 * capacity)))
            ends.extend(array("q", bytes(8 * capacity)))
            capacity *= 2
        if sent + i >= gate[0] or t1 >= next_wake:
            reached, halted, limit_wake = limits.check(sent + i, t1)
            if reached and channel is not None:
                channel.send("reached", queries=sent + i, t_ns=t1)
            if halted:
                break
            if t1 >= next_progress:
                next_progress = t1 + progress_ns
                if next_chunk is not None and t1 >= next_chunk:
                    next_chunk = t1 + chunk_ns
                    channel.send("chunk", queries=sent + i,  # type: ignore[union-attr]
                                 t_ns=t1, start_ns=protocol.pack_int64(starts[:i]),
                                 end_ns=protocol.pack_int64(ends[:i]))
                    sent += i
                    i = 0
                elif channel is not None:
                    channel.send("progress", queries=sent + i, t_ns=t1)
                if until_ns is not None and t1 >= until_ns:
                    break
            next_wake = min(next_progress, limit_wake)
    rec.start_ns, rec.end_ns, rec.count, rec.sent = starts, ends, i, sent
    if channel is not None:
        if halted:
            channel.send("halted", queries=rec.total, t_ns=clock())
        elif rec.total >= max_queries:
            channel.send("capped", queries=rec.total, t_ns=clock())
    return rec


def wait_until(t_ns: int, stop: threading.Event) -> None:
    """Wait for the monotonic clock to reach ``t_ns`` (sleep, then spin the last 5 ms: a
    thread woken from a sleep may wait for a busy CPU)."""
    clock = time.monotonic_ns
    if t_ns - clock() > 5_000_000:
        stop.wait((t_ns - clock() - 5_000_000) / 1e9)
    while clock() < t_ns and not stop.is_set():
        pass


def samples_message(rec: Recorder) -> dict[str, Any]:
    """The queries not sent in a chunk yet, and the total of the measurement."""
    starts, ends = rec.trimmed()
    return {"queries": rec.total, "start_ns": protocol.pack_int64(starts),
            "end_ns": protocol.pack_int64(ends)}
