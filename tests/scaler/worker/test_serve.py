"""The worker's serve loop (``scaler.worker.serve``) in a real worker process, spoken to
in the protocol's bytes: query frames in, done frames out on the caller's clock, and the
stream handed back to the reader thread afterwards (a closed loop still runs)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

import pytest

from scaler.worker import protocol
from scaler.worker.main import boot_id
from scaler.worker.spec import WorkerSpec

TIMEOUT_S = 60.0


class Speaker:
    """A worker child and a frame reader on its protocol stream, every read under a
    deadline."""

    def __init__(self, **spec) -> None:
        argv = WorkerSpec(engine="null", warmup_s=0.0, warmup_queries=1, **spec).argv()
        self.proc = subprocess.Popen([sys.executable, "-m", "scaler.worker", *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.reader = protocol.FrameReader()
        self.items: list = []

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def next(self):
        deadline = time.monotonic() + TIMEOUT_S
        while not self.items:
            left = deadline - time.monotonic()
            assert left > 0, "no message from the worker in time"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 1 << 16)
                assert data, f"the worker ended (code {self.proc.wait(5)})"
                self.reader.feed(data)
                self.items.extend(self.reader.items())
        return self.items.pop(0)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)


@pytest.fixture
def worker():
    w = Speaker()
    yield w
    w.close()


def test_queries_are_answered_in_order_on_the_callers_clock(worker):
    ready = worker.next()
    assert ready["type"] == "ready" and ready["protocol"] == protocol.PROTOCOL_VERSION
    assert ready["boot_id"] == boot_id() and ready["clock"] == "CLOCK_MONOTONIC"
    worker.send(protocol.encode({"type": "serve"}))
    before = time.monotonic_ns()
    worker.send(b"".join(protocol.query_frame(q, 1) for q in range(50)))
    done = [worker.next() for _ in range(50)]
    after = time.monotonic_ns()
    assert [d[:2] for d in done] == [("D", q) for q in range(50)]
    ends = [d[3] for d in done]
    # the same monotonic clock: every inference lies between the send and the last receipt
    assert all(before <= d[2] <= d[3] <= after for d in done)
    assert ends == sorted(ends)  # one after another, in the order sent


def test_after_serving_the_reader_thread_takes_the_stream_back(worker):
    """``stop`` ends serving with ``served`` (how many queries ran, how many it dropped); a
    closed-loop ``start`` sent right behind it (in the same write) still reaches the
    worker, and so does ``exit``."""
    assert worker.next()["type"] == "ready"
    worker.send(protocol.encode({"type": "serve"}) + protocol.query_frame(1, 1))
    assert worker.next()[:2] == ("D", 1)
    worker.send(protocol.encode({"type": "stop"}) + protocol.encode({"type": "start"}))
    assert worker.next() == {"type": "served", "queries": 1, "dropped": 0}
    assert worker.next()["type"] == "started"
    worker.send(protocol.encode({"type": "stop"}))
    while (m := worker.next())["type"] != "samples":
        assert m["type"] in ("progress", "chunk", "capped")
    assert m["queries"] >= 0  # however few ran before the stop: the loop ran and answered
    worker.send(protocol.encode({"type": "serve"}) + protocol.query_frame(2, 1))
    assert worker.next()[:2] == ("D", 2)
    worker.send(protocol.encode({"type": "exit"}))
    assert worker.next() == {"type": "served", "queries": 1, "dropped": 0}
    assert worker.next()["type"] == "bye"
    assert worker.proc.wait(TIMEOUT_S) == 0


def test_a_stop_drops_the_queries_not_started():
    """100 queries of a fixed 20 ms (2 s of work) sent at once, then a stop as soon as the
    first is done: the worker runs at most the query it is in (and those that ended before
    the stop reached it), drops the rest unstarted, and says how many of each; every query
    sent is one or the other. A stop sent with the queries, in the same write, drops them
    all."""
    w = Speaker(service_s=0.02)
    try:
        assert w.next()["type"] == "ready"
        w.send(protocol.encode({"type": "serve"}) +
               b"".join(protocol.query_frame(q, 1) for q in range(100)))
        assert w.next()[:2] == ("D", 0)
        w.send(protocol.encode({"type": "stop"}))
        done = [0]
        while type(m := w.next()) is tuple:
            done.append(m[1])
        assert m["type"] == "served" and m["queries"] == len(done)
        assert done == list(range(len(done)))  # in order, none after the stop was read
        assert m["queries"] + m["dropped"] == 100 and m["dropped"] > 50
        w.send(protocol.encode({"type": "serve"}) +
               b"".join(protocol.query_frame(q, 1) for q in range(10)) +
               protocol.encode({"type": "stop"}))
        assert w.next() == {"type": "served", "queries": 0, "dropped": 10}
    finally:
        w.close()


def test_end_of_input_while_serving_ends_the_worker(worker):
    assert worker.next()["type"] == "ready"
    worker.send(protocol.encode({"type": "serve"}))
    worker.proc.stdin.close()
    assert worker.next()["type"] == "served"
    assert worker.next()["type"] == "bye"
    assert worker.proc.wait(TIMEOUT_S) == 0


def test_a_stop_behind_a_flood_is_read_after_the_query_running():
    """40,000 queries of a fixed 1 ms (40 s of work, several pipes full) and a stop right
    behind them: the worker reads ahead while it serves, so it meets the stop within a few
    queries, not after serving what filled its pipe; every query is run or dropped."""
    w = Speaker(service_s=0.001)
    try:
        assert w.next()["type"] == "ready"
        flood = (protocol.encode({"type": "serve"}) +
                 b"".join(protocol.query_frame(q, 1) for q in range(40_000)) +
                 protocol.encode({"type": "stop"}))
        writer = threading.Thread(target=w.send, args=(flood,), daemon=True)
        writer.start()  # the pipe takes 64 KiB: the worker's reads let the rest in
        while type(m := w.next()) is tuple:
            pass
        writer.join(TIMEOUT_S)
        assert m["type"] == "served" and m["queries"] + m["dropped"] == 40_000
        assert m["queries"] < 4_000, m  # under a tenth of the work: the stop was read early
    finally:
        w.close()
