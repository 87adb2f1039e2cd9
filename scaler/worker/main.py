"""Worker process: pin itself, load the engine, warm up, report ``ready``, run the timed loop.

Order matters: the process is pinned and its thread settings exported before TensorFlow is
imported (TF reads them once; ``load``). Then each ``start`` runs one measurement
(``loop.timed_loop``) and each ``serve`` the open loop (``serve.serve_loop``), commands
arriving on the protocol ``channel``. Run alone for debugging with ``--standalone-s SECONDS``:
it then starts by itself and prints a summary on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
import traceback

from scaler.errors import UsageError
from scaler.hostfacts import boot_id  # noqa: F401  (tests/scaler/worker/test_serve.py)
from scaler.worker import protocol
from scaler.worker import spec as spec_options
from scaler.worker.channel import Channel
from scaler.worker.load import load
from scaler.worker.loop import Recorder, samples_message, timed_loop
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


def die_with_parent() -> None:
    """Ask the kernel to kill this worker if the coordinator dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        sys.exit(1)


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
