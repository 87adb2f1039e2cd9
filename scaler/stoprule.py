"""The closed loop's stop rule: what the coordinator knows of a group while it measures, and
the limits it gives each worker so that the window ends as soon as its rules are met.

A window lasts at least ``min_duration_s`` AND at least ``min_queries`` (over all instances).
The coordinator does not hear of every query (a message a query would cost the harness
more than the rule is worth); it gives each worker limits and a worker halts by itself at
the end of the first query where its count is at least ``stop_at`` AND its clock has passed
``until_ns`` (the window's start plus ``min_duration_s``, in that worker's clock):

- ``stop_at`` is the smaller of the worker's share of ``min_queries`` (split evenly at the
  start: the shares sum to ``min_queries``) and its known count plus the queries the group
  still lacks (reaching that meets the group's count whatever the others do: counts only
  grow). Whichever a worker halts by, the group's count is met once all have halted, so
  instances of one speed end together at exactly ``min_queries`` (or at the minimum
  duration) with no message on the way.
- ``report_at``: the count at which the worker reports ``reached`` (half way to its
  ``stop_at``), so the coordinator learns counts as they near the end (a few reports a
  worker a window, not one a query) and tightens the limits of instances that run faster
  or slower than the others; it stops the group itself once the known counts meet the
  rules, and when every worker has halted.

On one machine (the workers' and the coordinator's clocks are one: same boot) the window's
start is scheduled: ``start`` carries ``at_ns``, a moment ``START_MARGIN_S`` ahead, at which
every worker begins, so ``until_ns`` is known from the start and the window starts there
(a worker the scheduler wakes late begins late and holds its ``until_ns`` as late: the
record says by how much). Elsewhere
(VMs, remote hosts) each worker begins on ``start`` and the window starts when the last
has; each start is moved onto the coordinator's clock by when it was heard (never earlier
than it was).
"""

from __future__ import annotations

import time
from typing import Any

from scaler.worker import protocol

__all__ = ["Watch", "allowed_over", "window_record"]

START_MARGIN_S = 0.1  # the common start is this far ahead of the ``start`` messages
LATE_NS = 1_000_000  # a worker that begins within this of the common start began on it


def allowed_over(rules: Any) -> int | None:
    """Queries over the bound that ``min_queries`` queries may hold and still prove the
    percentile under it (None: no bound to test)."""
    if rules.latency_bound_ms is None or rules.bound_percentile is None:
        return None
    from scaler.stats import min_passing

    n, t = rules.min_queries, 0
    while n - (t + 1) >= min_passing(t + 1, rules.bound_percentile):
        t += 1
    return t


def _boot_id() -> str:
    from scaler.hostfacts import boot_id

    return boot_id()


class Watch:
    """What the coordinator knows of a group while it measures: queries so far, when each
    worker was last heard from, which have started, which hit ``--max-queries`` or halted
    at the window's end, and the limits each worker was last sent."""

    def __init__(self, n: int, rules: Any, stall_s: float,
                 boot_ids: list[Any] | None = None) -> None:
        self.rules, self.stall_s = rules, stall_s
        self.t0 = time.monotonic()
        self.queries = [0] * n
        self.heard = [self.t0] * n
        self.started: set[int] = set()
        self.started_ns: list[int | None] = [None] * n  # in each worker's clock
        self.heard_started_ns = [0] * n  # in the coordinator's clock
        self.capped: set[int] = set()  # reached --max-queries: idle, silent, not stalled
        self.capped_early: set[int] = set()  # ... before the min duration was over
        self.halted: set[int] = set()  # ended the window by its limits: the rules are met
        self.window_t0 = float("inf")  # min_duration counts once every instance is running
        self.window_end = float("inf")  # when min_duration is over (coordinator's clock)
        self.until_ns: list[int | None] = [None] * n  # the same, in each worker's clock
        self.over_bound = 0  # queries over the latency bound (chunks seen so far)
        self.allowed_over = allowed_over(rules)
        self.sent: list[dict[str, Any] | None] = [None] * n
        q = rules.min_queries
        self.shares = [q // n + (1 if k < q % n else 0) for k in range(n)]
        ids = [str(b or "") for b in (boot_ids or [])]
        self.one_clock = len(ids) == n and len(set(ids)) == 1 and bool(ids[0])
        self.my_clock = self.one_clock and ids[0] == _boot_id()
        self.at_ns: int | None = None  # the common start (one clock with the coordinator)
        self.window_start_ns: int | None = None  # in the workers' clock, when it is one
        if self.my_clock:
            self.at_ns = time.monotonic_ns() + int(START_MARGIN_S * 1e9)
            self._set_window_start(self.at_ns)

    @property
    def window_open(self) -> bool:
        return self.window_t0 != float("inf")

    @property
    def bound_failed(self) -> bool:
        return self.allowed_over is not None and self.over_bound > self.allowed_over

    def rules_met(self, now: float) -> bool:
        """Every worker has started (a late one's window ends as late), the minimum duration
        is over and the known counts meet ``min_queries``; or every worker has halted."""
        return (self.window_open and now >= self.window_end
                and sum(self.queries) >= self.rules.min_queries) or (
            len(self.halted) == len(self.heard))

    def enough(self, now: float) -> bool:
        """The run rules are met, the time limit is reached, every worker is capped (or
        halted), or the latency bound can no longer be met."""
        return (self.rules_met(now) or now - self.t0 >= self.rules.max_duration_s
                or len(self.capped | self.halted) == len(self.heard) or self.bound_failed)

    def stopped_by(self, now: float) -> str:
        """Which rule ended the window (for its record)."""
        if self.bound_failed:
            return "latency_bound"
        if self.rules_met(now):
            return "rules_met"
        if len(self.capped) == len(self.heard):
            return "max_queries"
        return "max_duration" if now - self.t0 >= self.rules.max_duration_s else "failure"

    def count_over(self, message: dict[str, Any]) -> None:
        if self.allowed_over is None or self.rules.latency_bound_ms is None:
            return
        import numpy as np

        start = np.frombuffer(protocol.unpack_int64(message["start_ns"]), dtype=np.int64)
        end = np.frombuffer(protocol.unpack_int64(message["end_ns"]), dtype=np.int64)
        self.over_bound += int(np.count_nonzero(end - start > self.rules.latency_bound_ms * 1e6))

    def stalled(self, now: float) -> list[int]:
        return [k for k, h in enumerate(self.heard)
                if now - h > self.stall_s and k not in self.capped and k not in self.halted]

    def wake_in(self, now: float) -> float:
        """Seconds until the next deadline: the time limit, a stall, or the window's end."""
        running = [h for k, h in enumerate(self.heard)
                   if k not in self.capped and k not in self.halted] or [now]
        wake = min(self.t0 + self.rules.max_duration_s, min(running) + self.stall_s,
                   max(self.window_end, now))
        return max(wake - now, 0.001)

    def heard_from(self, k: int, message: dict[str, Any]) -> None:
        self.heard[k] = time.monotonic()
        kind = message["type"]
        if kind == "started":
            self.started.add(k)
            self.started_ns[k] = int(message.get("t_ns") or 0)
            self.heard_started_ns[k] = time.monotonic_ns()
            if self.at_ns is not None:  # a worker that began late ends as late
                began = effective_start(self.started_ns[k], self.at_ns)  # type: ignore[arg-type]
                self.window_end = max(self.window_end,
                                      (began + self.rules.min_duration_s * 1e9) / 1e9)
            if len(self.started) == len(self.heard):
                self.window_t0 = self.heard[k]
                if self.at_ns is None:
                    self._open_window()
        elif kind in ("progress", "chunk", "capped", "reached", "halted"):
            self.queries[k] = max(self.queries[k], int(message["queries"]))
            if kind == "halted":
                self.halted.add(k)
            elif kind == "capped":
                self.capped.add(k)
                if self.heard[k] - self.window_t0 < self.rules.min_duration_s:
                    self.capped_early.add(k)

    def _set_window_start(self, t_ns: int) -> None:
        """The window starts at ``t_ns`` in the clock of the workers and the coordinator."""
        self.window_start_ns = t_ns
        until = t_ns + int(self.rules.min_duration_s * 1e9)
        self.until_ns = [until] * len(self.queries)
        self.window_end = until / 1e9

    def _open_window(self) -> None:
        """Every instance runs (no common start): the minimum duration starts now, in every
        worker's clock."""
        d_ns = int(self.rules.min_duration_s * 1e9)
        started = [int(s or 0) for s in self.started_ns]
        if self.one_clock:
            self.window_start_ns = max(started)
            self.until_ns = [max(started) + d_ns] * len(started)
        else:  # the last start heard, moved into each worker's clock (heard >= sent)
            last = max(self.heard_started_ns)
            self.until_ns = [s + (last - h) + d_ns
                             for s, h in zip(started, self.heard_started_ns)]
        self.window_end = self.window_t0 + self.rules.min_duration_s

    def limits(self, k: int) -> dict[str, Any]:
        """Worker ``k``'s limits from what is known now (see the module's docstring)."""
        known = self.queries[k]
        lacking = max(self.rules.min_queries - sum(self.queries), 0)
        stop_at = min(self.shares[k], known + lacking)
        return {"report_at": known + max(1, (stop_at - known) // 2) if stop_at > known
                else None, "stop_at": stop_at, "until_ns": self.until_ns[k]}

    def first_limits(self, k: int) -> dict[str, Any]:
        """What ``start`` carries: the limits, and the common start when there is one."""
        self.sent[k] = self.limits(k)
        return {**self.sent[k], "at_ns": self.at_ns}  # type: ignore[dict-item]

    def changed_limits(self) -> list[tuple[int, dict[str, Any]]]:
        """The workers whose limits changed since they were last sent, with the new ones."""
        out = []
        for k in range(len(self.queries)):
            if k in self.halted or k in self.capped:
                continue
            now = self.limits(k)
            if now != self.sent[k]:
                self.sent[k] = now
                out.append((k, now))
        return out

    def window(self, now: float) -> dict[str, Any]:
        """What the window asked for and how it ended (the recorded side is added from the
        samples by the group's record)."""
        return {"requested_queries": self.rules.min_queries,
                "requested_duration_s": self.rules.min_duration_s,
                "stopped_by": self.stopped_by(now), "one_clock": self.one_clock,
                "common_start": self.at_ns is not None,
                "start_ns": self.window_start_ns, "started_ns": list(self.started_ns)}


def effective_start(started_ns: int, at_ns: int | None) -> int:
    """When a worker's window began: the common start if it began within ``LATE_NS`` of it
    (as the worker itself counts), else when it began."""
    if at_ns is None or started_ns - at_ns > LATE_NS:
        return started_ns
    return at_ns


def window_record(window: dict[str, Any], starts: list[Any], ends: list[Any]
                  ) -> dict[str, Any]:
    """The window's requested and recorded queries and duration. ``instance_duration_s`` is
    the shortest instance's own span (its start to its last query's end: the rule each
    worker keeps by itself); with one clock ``recorded_duration_s`` is the span all ran
    together (the last start to the earliest last query end: a worker the machine woke
    late shortens it, and ``late_start_ms`` says by how much), otherwise the same as
    ``instance_duration_s``."""
    import numpy as np

    out = {k: window[k] for k in ("requested_queries", "requested_duration_s", "stopped_by",
                                  "common_start") if k in window}
    out["recorded_queries"] = int(sum(len(s) for s in starts))
    began = [s for s in window.get("started_ns") or [] if s is not None]
    if len(began) != len(starts) or not all(len(e) for e in ends):
        out["recorded_duration_s"] = out["instance_duration_s"] = None
        return out
    last = [int(np.asarray(e)[-1]) for e in ends]
    at = window.get("start_ns")
    if at is not None:  # how late the last began after the common start
        out["late_start_ms"] = round(max(max(began) - at, 0) / 1e6, 3)
        began = [effective_start(b, at) for b in began]
    own = min(e - b for e, b in zip(last, began))
    out["instance_duration_s"] = round(own / 1e9, 6)
    if window.get("one_clock"):
        out["recorded_duration_s"] = round((min(last) - max(began)) / 1e9, 6)
    else:
        out["recorded_duration_s"] = out["instance_duration_s"]
    return out
