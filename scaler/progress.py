"""Progress on stderr: a rich live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.coordinator import RunRules


class Reporter:
    """Plain lines: one when a group starts and one when it ends."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def message(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def group_started(self, label: str, rules: RunRules) -> None:
        self.message(f"{label}: starting workers")

    def event(self, kind: str, **data: Any) -> None:
        if kind == "measuring":
            self.message(f"  measuring (at least {data['min_duration_s']:g} s and "
                         f"{data['min_queries']} queries)")
        elif kind == "interrupted":
            self.message("  interrupted: stopping workers and keeping what they measured")

    def group_done(self, label: str, record: dict[str, Any]) -> None:
        if record["status"] != "complete":
            self.message(f"  {label}: FAILED: {'; '.join(record['errors']) or 'interrupted'}")
            return
        lat = record["latency_ms"]
        self.message(f"  {label}: {record['throughput_ips']:.1f} images/s, "
                     f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                     f"{record['queries']} queries")


class RichReporter(Reporter):
    """A live line per group with elapsed time and queries so far, then the result."""

    def __init__(self) -> None:
        from rich.console import Console

        super().__init__()
        self.console = Console(stderr=True)
        self.status: Any = None
        self.label = ""
        self.t0 = 0.0

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def group_started(self, label: str, rules: RunRules) -> None:
        self.label, self.t0 = label, time.monotonic()
        self.status = self.console.status(f"{label}: starting workers")
        self.status.start()

    def event(self, kind: str, **data: Any) -> None:
        if self.status is None:
            return
        if kind == "ready":
            self.status.update(f"{self.label}: instance {data['instance']} ready")
        elif kind == "progress":
            self.status.update(f"{self.label}: {data['elapsed_s']:.1f} s, "
                               f"{data['queries']} queries")
        elif kind == "interrupted":
            self.status.update(f"{self.label}: interrupted, stopping workers")

    def group_done(self, label: str, record: dict[str, Any]) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
        super().group_done(label, record)


def reporter(quiet: bool = False) -> Reporter:
    if not quiet and sys.stderr.isatty():
        return RichReporter()
    return Reporter(quiet=quiet)
