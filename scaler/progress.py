"""Progress on stderr: a rich live display on a terminal, plain lines otherwise.

A sweep says how far it is (groups done of those planned, and the time left at the pace so
far); a long wait says it is still alive: while workers start (a model may convert for tens
of seconds the first time) and while one long query runs (a batch of 1024 takes 30 s or
more), a line every ``heartbeat_s`` gives the elapsed time. Results go to stdout elsewhere;
nothing here prints a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.coordinator import RunRules


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _ms(value: float) -> str:
    return f"{value * 1000:.1f} µs" if value < 1 else f"{value:.2f} ms"


class Reporter:
    """Plain lines: one when a group starts, heartbeats while it waits, one when it ends."""

    heartbeat_s = 15.0

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.planned: int | None = None  # groups of the sweep, when the scenario knows them
        self.done = 0
        self.sweep_t0: float | None = None
        self.phase = ""
        self.phase_t0 = 0.0
        self.queries = 0
        self._beat: asyncio.Task[None] | None = None

    def message(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def plan(self, groups: int | None) -> None:
        """The scenario will measure this many groups (None: a search, it cannot know)."""
        self.planned, self.done, self.sweep_t0 = groups, 0, time.monotonic()

    def position(self) -> str:
        """``[3/48, 4m10s left]`` once a group is done, ``[1/48]`` before."""
        if not self.planned:
            return ""
        here = f"[{min(self.done + 1, self.planned)}/{self.planned}"
        if self.done and self.sweep_t0 is not None:
            pace = (time.monotonic() - self.sweep_t0) / self.done
            here += f", about {_fmt_s(pace * (self.planned - self.done))} left"
        return here + "] "

    def group_started(self, label: str, rules: RunRules) -> None:
        self._set_phase("starting workers")
        self.message(f"{self.position()}{label}: starting workers")
        self._start_heartbeat(label)

    def event(self, kind: str, **data: Any) -> None:
        if kind == "measuring":
            self._set_phase("measuring")
            self.message(f"  measuring (at least {data['min_duration_s']:.3g} s and "
                         f"{data['min_queries']} queries)")
        elif kind == "progress":
            self.queries = int(data.get("queries", self.queries))
        elif kind == "interrupted":
            self._set_phase("stopping")
            self.message("  interrupted: stopping workers and keeping what they measured")

    def group_done(self, label: str, record: dict[str, Any]) -> None:
        self._stop_heartbeat()
        self.done += 1
        if record["status"] != "complete":
            self.message(f"  {label}: FAILED: {'; '.join(record['errors']) or 'interrupted'}")
            return
        lat = record["latency_ms"]
        noisy = (f", NOISY: others used {record.get('others_cpu_share') or 0:.0%} of its CPUs"
                 if record.get("noisy") else "")
        self.message(f"  {label}: {record['throughput_ips']:.1f} images/s, "
                     f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, "
                     f"{record['queries']} queries{noisy}")

    # -- heartbeat ----------------------------------------------------------------------------

    def _set_phase(self, phase: str) -> None:
        self.phase, self.phase_t0, self.queries = phase, time.monotonic(), 0

    def beat_text(self, label: str) -> str:
        waited = _fmt_s(time.monotonic() - self.phase_t0)
        if self.phase == "starting workers":
            return (f"  {label}: still starting workers after {waited} (loading the model; "
                    "a first conversion can take a while)")
        if self.phase == "measuring":
            return (f"  {label}: measuring for {waited}, {self.queries} queries so far "
                    "(a long query reports when it ends)")
        return f"  {label}: {self.phase} for {waited}"

    def _start_heartbeat(self, label: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._beat = loop.create_task(self._heartbeat(label))

    async def _heartbeat(self, label: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)  # a timer for a message, not a poll
            self.message(self.beat_text(label))

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None


class RichReporter(Reporter):
    """A live line per group with the sweep's position, elapsed time and queries so far."""

    heartbeat_s = 1.0

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__()
        self.console = Console(stderr=True)
        self.status: Any = None
        self.label = ""

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def group_started(self, label: str, rules: RunRules) -> None:
        self.label = label
        self._set_phase("starting workers")
        self.status = self.console.status(f"{self.position()}{label}: starting workers")
        self.status.start()
        self._start_heartbeat(label)

    async def _heartbeat(self, label: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.status is not None:
                self.status.update(self.position() + self.beat_text(label).strip())

    def event(self, kind: str, **data: Any) -> None:
        if kind == "progress":
            self.queries = int(data.get("queries", self.queries))
        elif kind == "measuring":
            self._set_phase("measuring")
        elif kind == "interrupted":
            self._set_phase("stopping")
        if self.status is not None:
            self.status.update(self.position() + self.beat_text(self.label).strip())

    def group_done(self, label: str, record: dict[str, Any]) -> None:
        if self.status is not None:
            with contextlib.suppress(Exception):
                self.status.stop()
            self.status = None
        super().group_done(label, record)


def reporter(quiet: bool = False) -> Reporter:
    if not quiet and sys.stderr.isatty():
        return RichReporter()
    return Reporter(quiet=quiet)
