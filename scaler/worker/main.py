"""Worker process: pin itself, load the engine, warm up, report ``ready``, run the timed loop.

Order matters: the process is pinned and its thread settings exported before TensorFlow is
imported (TF reads them once). Run alone for debugging with ``--standalone-s SECONDS``: it then
starts by itself and prints a summary on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import queue
import signal
import sys
import threading
import time
import traceback
from array import array
from typing import IO, Any

from scaler.worker import protocol

PR_SET_PDEATHSIG = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from affinity.cpulist import parse_cpulist

    p = argparse.ArgumentParser(prog="python -m scaler.worker", description=__doc__)
    p.add_argument("--instance", type=int, default=0)
    p.add_argument("--engine", default="tf")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--cpus", type=parse_cpulist, default=None, help="pin to these CPUs")
    p.add_argument("--nodes", type=parse_cpulist, default=None, help="bind memory to nodes")
    p.add_argument("--threads", type=int, default=None, help="default: CPUs of the affinity")
    p.add_argument("--inter-op-threads", type=int, default=1)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--warmup-queries", type=int, default=1)
    p.add_argument("--progress-s", type=float, default=0.25, help="progress report interval")
    p.add_argument("--max-queries", type=int, default=250_000,
                   help="stop querying after this many (bounds the samples of fast engines)")
    p.add_argument("--standalone-s", type=float, default=None, help="run alone for N seconds")
    return p.parse_args(argv)


class Channel:
    """Protocol messages out on the private fd; commands in from stdin on a reader thread."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.stop = threading.Event()
        threading.Thread(target=self._read, name="protocol-reader", daemon=True).start()

    def send(self, type_: str, **fields: Any) -> None:
        data = memoryview(protocol.encode({"type": type_, **fields}))
        while data:  # a raw write may be partial: a VM's virtio-serial port takes 32 KiB a call
            data = data[self.out.write(data):]

    def _read(self) -> None:
        for line in sys.stdin.buffer:
            message = protocol.decode(line)
            if message is None:
                continue
            if message["type"] == "start":  # cleared here, in order with the stop after it
                self.stop.clear()
            elif message["type"] in ("stop", "exit"):
                self.stop.set()
            self.inbox.put(message)
        self.stop.set()  # EOF: the coordinator is gone
        self.inbox.put({"type": "eof"})

    def wait_for(self, *types: str) -> dict[str, Any]:
        while True:
            message = self.inbox.get()
            if message["type"] in types or message["type"] == "eof":
                return message


def die_with_parent() -> None:
    """Ask the kernel to kill this worker if the coordinator dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        sys.exit(1)


class Recorder:
    """Per-query start and end times in preallocated arrays (grown by doubling, rarely)."""

    def __init__(self, capacity: int = 1 << 14) -> None:
        self.start_ns = array("q", bytes(8 * capacity))
        self.end_ns = array("q", bytes(8 * capacity))
        self.count = 0

    def trimmed(self) -> tuple[array, array]:
        return self.start_ns[: self.count], self.end_ns[: self.count]


def timed_loop(engine: Any, inputs: Any, stop: threading.Event, channel: Channel | None,
               progress_s: float, max_queries: int, until_ns: int | None = None) -> Recorder:
    """Run queries back to back until ``stop`` is set, ``max_queries`` are done or the clock
    passes ``until_ns``, recording each one."""
    rec = Recorder()
    infer = engine.infer
    clock = time.monotonic_ns
    is_stopped = stop.is_set
    starts, ends = rec.start_ns, rec.end_ns
    capacity = len(starts)
    progress_ns = int(progress_s * 1e9)
    next_progress = clock() + progress_ns
    if channel is not None:
        channel.send("started", t_ns=clock())
    i = 0
    while not is_stopped() and i < max_queries:
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
        if t1 >= next_progress:
            next_progress = t1 + progress_ns
            if channel is not None:
                channel.send("progress", queries=i, t_ns=t1)
            if until_ns is not None and t1 >= until_ns:
                break
    rec.start_ns, rec.end_ns, rec.count = starts, ends, i
    if i >= max_queries and channel is not None:
        channel.send("capped", queries=i, t_ns=clock())
    return rec


def load(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """Pin, load the engine, warm up; returns the engine, its inputs and the ready report."""
    from affinity import bind, read_isa
    from scaler.engines import load_engine
    from scaler.engines.base import EngineSpec

    t_begin = time.monotonic()
    binding = bind(args.cpus, args.nodes, threads=args.threads,
                   inter_op_threads=args.inter_op_threads)
    spec = EngineSpec(engine=args.engine, precision=args.precision, model=args.model,
                      batch=args.batch, threads=binding.threads,
                      inter_op_threads=args.inter_op_threads, cache_dir=args.cache_dir,
                      seed=args.instance)
    engine = load_engine(spec)
    inputs = engine.make_input()
    t_loaded = time.monotonic()
    warm_lat = []
    while True:
        t0 = time.monotonic()
        engine.infer(inputs)
        warm_lat.append(time.monotonic() - t0)
        if (len(warm_lat) >= args.warmup_queries
                and time.monotonic() - t_loaded >= args.warmup_s):
            break
    report = {
        "instance": args.instance,
        "pid": os.getpid(),
        "hostname": platform.node(),
        "binding": binding.to_dict(),
        "threads": binding.threads,
        "engine": dict(engine.info),
        "isa": list(read_isa()),
        "python": platform.python_version(),
        "load_s": round(t_loaded - t_begin, 3),
        "warmup_queries": len(warm_lat),
        "warmup_last_query_s": round(warm_lat[-1], 6),
        "clock": "CLOCK_MONOTONIC",
        "boot_id": _boot_id(),
        "protocol": protocol.PROTOCOL_VERSION,
    }
    return engine, inputs, report


def _boot_id() -> str:
    """Workers with the same boot id share one monotonic clock (their windows compare)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def samples_message(rec: Recorder) -> dict[str, Any]:
    starts, ends = rec.trimmed()
    return {"queries": rec.count, "start_ns": protocol.pack_int64(starts),
            "end_ns": protocol.pack_int64(ends)}


def run(args: argparse.Namespace, channel: Channel) -> int:
    engine, inputs, report = load(args)
    channel.send("ready", **report)
    if args.standalone_s is not None:
        until = time.monotonic_ns() + int(args.standalone_s * 1e9)
        rec = timed_loop(engine, inputs, threading.Event(), None, 0.05, args.max_queries,
                         until_ns=until)
        channel.send("samples", **samples_message(rec))
        print_summary(rec, args.batch)
        return 0
    # one measurement per start; a coordinator may reuse this warm worker for its next group
    while channel.wait_for("start", "exit")["type"] == "start":
        rec = timed_loop(engine, inputs, channel.stop, channel, args.progress_s,
                         args.max_queries)
        channel.stop.wait()  # a capped worker idles until the group stops together
        channel.send("samples", **samples_message(rec))
    engine.close()
    channel.send("bye")
    return 0


def print_summary(rec: Recorder, batch: int) -> None:
    starts, ends = rec.trimmed()
    if not rec.count:
        print("worker: no query completed", file=sys.stderr)
        return
    lat = sorted((e - s) / 1e6 for s, e in zip(starts, ends))
    span = (ends[-1] - starts[0]) / 1e9
    print(f"worker: {rec.count} queries, p50 {lat[len(lat) // 2]:.2f} ms, "
          f"{rec.count * batch / span:.1f} images/s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    out = protocol.split_stdout()
    die_with_parent()
    channel = Channel(out)
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse already printed the reason on stderr
        channel.send("error", kind="usage", message="bad worker arguments")
        return int(exc.code or 2)
    try:
        return run(args, channel)
    except Exception as exc:  # reported to the coordinator, which names the instance
        traceback.print_exc(file=sys.stderr)
        exit_code = getattr(exc, "exit_code", 1)
        channel.send("error", kind=type(exc).__name__, message=" ".join(str(exc).split()),
                     exit_code=exit_code)
        return 1
