"""What one group of workers is asked for and what came of it: the run rules, each
instance's outcome (status, ready report, raw samples, also of a worker that failed) and the
group's (interrupted, under the minimum count, its window, noise and speed probe)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from scaler.worker import protocol


@dataclass(frozen=True)
class RunRules:
    """LoadGen-style run rules: at least ``min_duration_s`` AND at least ``min_queries``."""

    min_duration_s: float = 10.0
    min_queries: int = 100  # over all instances of the group
    warmup_s: float = 2.0
    max_duration_s: float = 600.0  # stop even if min_queries is not reached (then say so)
    ready_timeout_s: float = 300.0
    stall_timeout_s: float = 60.0  # longest silence from a running worker
    # a latency bound the group is tested against (multistream): the measurement ends early
    # once more queries are over it than ``bound_percentile`` could still allow at
    # ``min_queries`` (LoadGen's early stopping: the probe cannot pass any more)
    latency_bound_ms: float | None = None
    bound_percentile: float | None = None  # e.g. 0.99


@dataclass
class InstanceOutcome:
    index: int
    partition: dict[str, Any] | None
    status: str = "starting"  # ready, complete, failed
    error: str | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    start_ns: Any = None  # array('q') of query start times (monotonic ns)
    end_ns: Any = None
    stderr_tail: list[str] = field(default_factory=list)
    # samples received in chunks while measuring; a failed worker keeps them
    _starts: list[Any] = field(default_factory=list, repr=False)
    _ends: list[Any] = field(default_factory=list, repr=False)

    def absorb(self, message: dict[str, Any]) -> None:
        """Keep the samples of a ``chunk`` or ``samples`` message."""
        self._starts.append(protocol.unpack_int64(message["start_ns"]))
        self._ends.append(protocol.unpack_int64(message["end_ns"]))

    def gather(self) -> None:
        """Join the samples received so far (all of them, or those before a failure)."""
        if self._starts:
            start, end = array("q"), array("q")
            for part in self._starts:
                start.extend(part)
            for part in self._ends:
                end.extend(part)
            self.start_ns, self.end_ns = start, end

    @property
    def samples_until_failure(self) -> bool:
        return self.status != "complete" and self.start_ns is not None


@dataclass
class GroupOutcome:
    instances: list[InstanceOutcome]
    interrupted: bool = False
    under_min_queries: bool = False
    capped_early: list[int] = field(default_factory=list)  # hit --max-queries before the
    # min duration: the duration rule was not met for them
    wall_s: float = 0.0
    bound_failed: bool = False  # stopped early: too many queries over the latency bound
    noise: dict[str, Any] = field(default_factory=dict)  # the noise meter of the window
    speed_probe: dict[str, Any] = field(default_factory=dict)  # speedprobe at both edges
    stall_s: float | None = None  # the silence after which a worker counted as stalled
    # the closed-loop window: requested queries and duration, what ended it, each worker's
    # start (``scaler.stoprule``); the record adds the recorded counts from the samples
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.interrupted and all(i.status == "complete" for i in self.instances)

    @property
    def errors(self) -> list[str]:
        return [f"instance {i.index}: {i.error}" for i in self.instances if i.error]
