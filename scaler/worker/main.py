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

from scaler.errors import UsageError
from scaler.hostfacts import boot_id
from scaler.worker import protocol
from scaler.worker import spec as spec_options
from scaler.worker.serve import serve_loop
from scaler.worker.spec import WorkerSpec

PR_SET_PDEATHSIG = 1


def parse_args(argv: list[str] | None) -> tuple[WorkerSpec, float | None]:
    """The worker's spec (``--spec JSON`` and/or one option per field) and ``--standalone-s``."""
    p = argparse.ArgumentParser(prog="python -m scaler.worker", description=__doc__)
    spec_options.add_options(p)
    p.add_argument("--standalone-s", type=float, default=None, help="run alone for N seconds")
    args = p.parse_args(argv)
    return spec_options.from_options(args), args.standalone_s


class Channel:
    """Protocol messages out on the private fd; commands in from stdin on a reader thread
    (which hands the stream to ``serve_loop`` while it serves: ``take_input``/``give_back``)."""

    def __init__(self, out: IO[bytes], source: IO[bytes] | None = None) -> None:
        self.out = out
        self.source = source if source is not None else sys.stdin.buffer
        self.inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.rest = bytearray()  # read but not yet handled
        self._handed_back = threading.Event()
        self.limits = Limits()
        threading.Thread(target=self._read, name="protocol-reader", daemon=True).start()

    def send(self, type_: str, **fields: Any) -> None:
        self.write(protocol.encode({"type": type_, **fields}))

    def write(self, raw: bytes | bytearray) -> None:
        data = memoryview(raw)
        while data:  # a raw write may be partial: a VM's virtio-serial port takes 32 KiB a call
            data = data[self.out.write(data):]

    def read_input(self) -> bytes:
        return self.source.read1(1 << 16)

    def take_input(self) -> bytes:
        """For ``serve_loop``: what the reader thread read past ``serve`` (it now waits)."""
        data, self.rest = bytes(self.rest), bytearray()
        return data

    def give_back(self, rest: bytes, ended: str) -> None:
        """From ``serve_loop``: the bytes it read past its end; the reader thread resumes."""
        self.rest = bytearray(rest)
        if ended:
            self.stop.set()
        self._handed_back.set()

    def _read(self) -> None:
        while True:
            nl = self.rest.find(b"\n")
            if nl < 0:
                chunk = self.read_input()
                if not chunk:
                    break
                self.rest += chunk
                continue
            line = bytes(self.rest[:nl + 1])
            del self.rest[:nl + 1]
            message = protocol.decode(line)
            if message is None:
                continue
            if message["type"] == "start":  # cleared here, in order with the stop after it
                self.stop.clear()
                self.limits.reset(message)
            elif message["type"] == "limits":  # read by the timed loop, not by wait_for
                self.limits.update(message)
                continue
            elif message["type"] in ("stop", "exit"):
                self.stop.set()
            if message["type"] == "serve":  # serve_loop reads the stream until it ends
                self._handed_back.clear()
                self.inbox.put(message)
                self._handed_back.wait()
                continue
            self.inbox.put(message)
        self.stop.set()  # EOF: the coordinator is gone
        self.inbox.put({"type": "eof"})

    def wait_for(self, *types: str) -> dict[str, Any]:
        while True:
            message = self.inbox.get()
            if message["type"] in types or message["type"] == "eof":
                return message


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


SLURM_KEYS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURMD_NODENAME")


def wait_until(t_ns: int, stop: threading.Event) -> None:
    """Wait for the monotonic clock to reach ``t_ns`` (sleep, then spin the last 5 ms: a
    thread woken from a sleep may wait for a busy CPU)."""
    clock = time.monotonic_ns
    if t_ns - clock() > 5_000_000:
        stop.wait((t_ns - clock() - 5_000_000) / 1e9)
    while clock() < t_ns and not stop.is_set():
        pass


def load(spec: WorkerSpec) -> tuple[Any, Any, dict[str, Any]]:
    """Pin, load the engine, warm up; returns the engine, its inputs and the ready report."""
    from affinity import bind, read_isa
    from scaler.engines import EngineSpec, isa_caps, load_engine
    from scaler.engines.kernels import amx_permission

    t_begin = time.monotonic()
    from scaler.worker import threads

    binding = bind(spec.cpus, spec.nodes, threads=spec.threads,
                   inter_op_threads=spec.inter_op_threads, threading=spec.threading)
    os.environ.update(isa_caps.env(spec.isa))  # before the runtime loads: read once
    if spec.cpus is not None:
        threads.pin_every_thread(binding.cpus)
    engine = load_engine(EngineSpec(
        engine=spec.engine, precision=spec.precision, model=spec.model, batch=spec.batch,
        threads=binding.threads, inter_op_threads=binding.inter_op_threads,
        cache_dir=spec.cache_dir, seed=spec.instance, threading=spec.threading,
        isa=spec.isa, service_s=spec.service_s))
    inputs = engine.make_input()
    before = threads.snapshot()  # the compute threads are those that work in the warm-up
    t_loaded = time.monotonic()
    warm_lat = []
    while True:
        t0 = time.monotonic()
        engine.infer(inputs)
        warm_lat.append(time.monotonic() - t0)
        if (len(warm_lat) >= spec.warmup_queries
                and time.monotonic() - t_loaded >= spec.warmup_s):
            break
    spin = threads.idle_spin(binding.threads)  # right after the last warm-up query
    readback = threads.read_back(binding.cpus, before)
    if spec.threading == "model-zoo" and not readback["per_thread_bound"]:
        readback = threads.bind_compact(readback, binding.cpus)
    from affinity.numamaps import read_numa_maps

    report = {
        "instance": spec.instance,
        "pid": os.getpid(),
        "hostname": platform.node(),
        "binding": binding.to_dict(),
        "memory_nodes": read_numa_maps(),  # where its memory is after warm-up, per node
        "threads": binding.threads,
        "threading": spec.threading,
        "thread_readback": readback,
        "spin": spin,
        "engine": dict(engine.info),
        "isa": list(read_isa()),
        "amx_permission": amx_permission(),  # after warm-up: did the runtime enable AMX?
        "python": platform.python_version(),
        "load_s": round(t_loaded - t_begin, 3),
        "warmup_queries": len(warm_lat),
        "warmup_last_query_s": round(warm_lat[-1], 6),
        "clock": "CLOCK_MONOTONIC",
        "boot_id": boot_id(),
        "protocol": protocol.PROTOCOL_VERSION,
        "rss_peak_bytes": _rss_peak(),  # the model's footprint, checked before later runs
    }
    slurm = {k: v for k, v in os.environ.items() if k in SLURM_KEYS or k.startswith(
        ("SLURM_CPU_BIND", "SLURM_MEM_BIND"))}
    if slurm:  # a Slurm job step: its ids and the binding Slurm says it applied
        report["slurm"] = slurm
    return engine, inputs, report


def _rss_peak() -> int | None:
    from scaler.footprint import rss_peak_bytes

    return rss_peak_bytes()


def samples_message(rec: Recorder) -> dict[str, Any]:
    """The queries not sent in a chunk yet, and the total of the measurement."""
    starts, ends = rec.trimmed()
    return {"queries": rec.total, "start_ns": protocol.pack_int64(starts),
            "end_ns": protocol.pack_int64(ends)}


def run(spec: WorkerSpec, standalone_s: float | None, channel: Channel) -> int:
    # the protocol reader thread (stop, limits) gets the GIL within 1 ms of a message even
    # while an engine that never releases it (the null engine) runs queries
    sys.setswitchinterval(0.001)
    engine, inputs, report = load(spec)
    channel.send("ready", **report)
    if standalone_s is not None:
        until = time.monotonic_ns() + int(standalone_s * 1e9)
        rec = timed_loop(engine, inputs, threading.Event(), None, 0.05, spec.max_queries,
                         until_ns=until)
        channel.send("samples", **samples_message(rec))
        print_summary(rec, spec.batch)
        return 0
    # one measurement per start (closed loop) or per serve (queries sent by the coordinator's
    # load generator); a coordinator may reuse this warm worker for its next group
    while (order := (command := channel.wait_for("start", "serve", "exit"))["type"]) in (
            "start", "serve"):
        if order == "serve":
            if serve_loop(engine, inputs, channel, each=bool(command.get("each"))) != "stop":
                break
            continue
        rec = timed_loop(engine, inputs, channel.stop, channel, spec.progress_s,
                         spec.max_queries, chunk_s=spec.chunk_s, limits=channel.limits,
                         begin_ns=command.get("at_ns"))
        channel.stop.wait()  # a capped or halted worker idles until the group stops together
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
        spec, standalone_s = parse_args(argv)
    except SystemExit as exc:  # argparse already printed the reason on stderr
        channel.send("error", kind="usage", message="bad worker arguments")
        return int(exc.code or 2)
    except UsageError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        channel.send("error", kind="usage", message=str(exc))
        return 2
    try:
        return run(spec, standalone_s, channel)
    except Exception as exc:  # reported to the coordinator, which names the instance
        traceback.print_exc(file=sys.stderr)
        exit_code = getattr(exc, "exit_code", 1)
        channel.send("error", kind=type(exc).__name__, message=" ".join(str(exc).split()),
                     exit_code=exit_code)
        return 1
