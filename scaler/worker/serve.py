"""The worker's side of the server scenario: serve the queries the coordinator dispatches.

While serving, this loop reads the protocol stream itself (the ``Channel``'s reader thread
hands it over and waits): a query frame is answered by a done frame without a thread hop,
and the done frames of what was read in one go leave in one write. Each ``query`` is one
inference at the engine's batch (a dynamic batch of fewer requests is padded, as a
fixed-shape model is served); ``done`` carries its start and end on this process's
monotonic clock, which the coordinator uses as the completion time when it shares the
clock (same boot) and replaces by its own receipt time otherwise.
"""

from __future__ import annotations

import time
from typing import Any

from scaler.worker import protocol


def serve_loop(engine: Any, inputs: Any, channel: Any, each: bool = False) -> str:
    """Serve until ``stop``, ``exit`` or end of input; returns which, after ``served``.
    The done frames of the queries read in one go leave together once they are all served
    (the coordinator times them by their own end times), or one by one with ``each`` (a
    coordinator on another clock times them on receipt)."""
    clock = time.monotonic_ns
    infer = engine.infer
    pack = protocol.DONE.pack
    tag = protocol.DONE_TAG
    reader = protocol.FrameReader(channel.take_input())
    read = channel.read_input
    ended = ""
    try:
        while not ended:
            out = bytearray()
            items = reader.items()
            for item in items:
                if type(item) is tuple:
                    if item[0] == "Q":
                        t0 = clock()
                        infer(inputs)
                        out += pack(tag, item[1], t0, clock())
                        if each:
                            channel.write(out)
                            out = bytearray()
                elif item["type"] in ("stop", "exit"):
                    ended = item["type"]
                    break
            items.close()
            if out:
                channel.write(out)
            if not ended:
                data = read()
                if not data:
                    ended = "eof"
                else:
                    reader.feed(data)
        channel.send("served")
    finally:
        channel.give_back(reader.rest(), ended)
    return ended
