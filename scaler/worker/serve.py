"""The worker's side of the server scenario: serve the queries the coordinator dispatches.

While serving, this loop reads the protocol stream itself (the ``Channel``'s reader thread
hands it over and waits): a query frame is answered by a done frame without a thread hop.
Each ``query`` is one inference at the engine's batch (a dynamic batch of fewer requests is
padded, as a fixed-shape model is served); ``done`` carries its start and end on this
process's monotonic clock, which the coordinator uses as the completion time when it shares
the clock (same boot) and replaces by its own receipt time otherwise.

Queries wait in this process in arrival order. While some wait, the loop looks at its input
without blocking at least every ``POLL_NS`` (between two queries: a query is never cut
short) and sends the done frames gathered so far, so a ``stop`` (or ``exit``) is seen one
query after it arrives however many queries were sent before it: the queries not started
then are dropped, never run, and ``served`` says how many (``dropped``) beside how many
ran (``queries``). A flooded worker therefore stops within about one service time; its
coordinator sends ``stop`` when every request is done, or when the probe has ended without
them (its rate failed), when the rest no longer matters. The waiting queries are read
ahead without a limit below ``READ_AHEAD`` (a memory guard, about 150 MB of ids: the
coordinator holds more per request): a limit that a flood reaches would leave the stop
behind a pipe of queries the worker must first serve.
"""

from __future__ import annotations

import collections
import select
import time
from collections.abc import Callable
from typing import Any

from scaler.worker import protocol

POLL_NS = 1_000_000
READ_AHEAD = 1 << 22


def input_poller(channel: Any) -> Callable[[], bytes | None]:
    """A function giving the input that has arrived, without waiting: b"" when none, None
    at end of input. (An input without a descriptor is never polled: b"" always.) The
    channel reads its input with ``read1`` only, so nothing waits in a Python buffer that
    the descriptor's readiness would not show."""
    try:
        fd = channel.source.fileno()
    except (AttributeError, OSError, ValueError):
        return lambda: b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    read = channel.read_input

    def poll() -> bytes | None:
        if not poller.poll(0):
            return b""
        return read() or None

    return poll


def serve_loop(engine: Any, inputs: Any, channel: Any, each: bool = False) -> str:
    """Serve until ``stop``, ``exit`` or end of input; returns which, after ``served``.
    Done frames leave in writes of what was served since the last (at the latest every
    ``POLL_NS`` while queries wait: the coordinator times them by their own end times), or
    one by one with ``each`` (a coordinator on another clock times them on receipt)."""
    clock = time.monotonic_ns
    infer = engine.infer
    pack = protocol.DONE.pack
    tag = protocol.DONE_TAG
    reader = protocol.FrameReader(channel.take_input())
    poll = input_poller(channel)
    pending: collections.deque[int] = collections.deque()  # query ids, oldest first
    ran = 0

    def take(data: bytes) -> str:
        """Queue the queries of ``data`` (with what was read before); the command that ends
        serving if one came (what follows it stays in ``reader`` for the channel)."""
        reader.feed(data)
        items = reader.items()
        try:
            for item in items:
                if type(item) is tuple:
                    if item[0] == "Q":
                        pending.append(item[1])
                elif item["type"] in ("stop", "exit"):
                    return str(item["type"])
        finally:
            items.close()
        return ""

    ended = ""
    try:
        ended = take(b"")
        while not ended:
            out = bytearray()
            look_ns = clock() + POLL_NS
            while pending:
                qid = pending.popleft()
                t0 = clock()
                infer(inputs)
                t1 = clock()
                out += pack(tag, qid, t0, t1)
                ran += 1
                if each:
                    channel.write(out)
                    out = bytearray()
                if t1 >= look_ns:  # while queries wait: send what is done, read what came
                    look_ns = t1 + POLL_NS
                    if out:
                        channel.write(out)
                        out = bytearray()
                    if len(pending) < READ_AHEAD:
                        data = poll()
                        if data is None:
                            ended = "eof"
                        elif data:
                            ended = take(data)
                        if ended:
                            break
            if out:
                channel.write(out)
            if not ended:
                data = channel.read_input()
                ended = take(data) if data else "eof"
        channel.send("served", queries=ran, dropped=len(pending))
    finally:
        channel.give_back(reader.rest(), ended)
    return ended
