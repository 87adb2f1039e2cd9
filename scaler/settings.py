"""Settings of a measurement, as requested on the command line (units in the names)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from scaler.errors import UsageError


class Stat(StrEnum):
    p99 = "p99"
    p90 = "p90"
    p50 = "p50"
    mean = "mean"


@dataclass(frozen=True)
class Settings:
    engine: str | None = None  # None: the default engine for the precision
    precision: str = "fp32"
    model: str = "resnet50"
    batch: int = 1
    placements: tuple[str, ...] = ("pinned",)  # names in scaler.placements
    threading: tuple[str, ...] = ("tuned",)  # --threading styles, swept like placements
    isa: tuple[str, ...] = ("native",)  # --isa caps of the kernels, swept like placements
    instances: tuple[int, ...] = (1,)
    smt: bool = False
    cores_per_instance: int | None = None  # None: placements share the machine out evenly
    oversubscribe: bool = False  # fixed-size instances may need more cores than there are
    min_duration_s: float = 10.0
    min_queries: int = 100
    warmup_s: float = 2.0
    max_duration_s: float = 600.0
    ready_timeout_s: float = 300.0
    latency_bound_ms: float = 33.3
    stat: Stat = Stat.p99
    max_batch: int = 256
    cache_dir: str | None = None
    # each placement's own options by its name (``Placement.options``: e.g. "vm" holds the
    # VM's memory, kernel, accel and huge pages); a placement not here has its defaults
    placement_options: Mapping[str, Any] = field(default_factory=dict)
    hosts_file: str | None = None  # run workers on the machines of this TOML file (SSH)
    ssh_parallel: int = 32  # --hosts: ssh processes connecting at once, at most
    fleet: str | None = None  # --fleet PROVIDER[:ARG] other than ssh (scaler.fleets.wanted)
    repeat: int = 1  # each group measured this many times, in fresh workers, interleaved
    experiment: str | None = None  # a suite's name for the run (its folder's prefix)
    quick: bool = False  # asked with --quick: a smoke run, never a basis for capacity
    # the server scenario: open-loop arrivals
    target_qps: float = 10.0  # requests per second over all instances (the start of a search)
    target_qps_given: bool = False  # --find-peak starts at target_qps only if it was given
    find_peak: bool = False  # search the highest rate that meets the bound
    peak_precision: float = 0.05  # the search stops when the bracket is this narrow
    seed: int = 0  # of the arrival schedule
    serve_max_batch: int | None = None  # dynamic batching up to this (None: --batch)
    batch_timeout_ms: float = 0.0  # a partial batch leaves after waiting this long
    remeasure: int = 1  # a contended repeat (speed probe) is measured again up to this often
    noise_limit: float = 0.05  # others' share of the measured CPUs that makes a group noisy
    quiet_wait_s: float = 0.0  # before each group, wait up to this long for a quiet machine
    stall_timeout_s: float = 60.0  # a measuring worker silent this long is stalled (killed)

    def options_of(self, placement: str) -> Any:
        """The options of the placement named ``placement`` (its defaults when none were
        given; None when it declares none)."""
        if placement in self.placement_options:
            return self.placement_options[placement]
        from scaler.placements import find

        known = find(placement)
        cls = type(known).options if known is not None else None
        return cls() if cls is not None else None

    def to_dict(self) -> dict[str, Any]:
        """As run.json records it (``requested``): every registered placement's options
        under their own keys (``vm_memory_mb``, ...), given or default."""
        from scaler.placements import placements
        from scaler.placements.options import record

        d = asdict(self)
        del d["placement_options"]
        for name, placement in placements().items():
            d.update(record(placement, self.placement_options.get(name)))
        d["placements"] = list(self.placements)
        d["threading"] = list(self.threading)
        d["isa"] = list(self.isa)
        d["stat"] = self.stat.value
        d["instances"] = list(self.instances)
        return d


MAX_INSTANCES = 4096  # more instances than any machine has cores, far beyond a useful sweep
MAX_VM_MEMORY_MB = 16 << 20  # 16 TiB


def parse_instances(text: str) -> tuple[int, ...]:
    """``1-8``, ``1,2,4,8`` or ``4``: sorted, unique, each from 1 to MAX_INSTANCES."""
    values: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*([0-9]{1,9})\s*(?:-\s*([0-9]{1,9})\s*)?", part)
        if not m:
            raise UsageError(f"bad instance list {text!r}: expected e.g. 1-8 or 1,2,4,8")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first:
            raise UsageError(f"bad instance list {text!r}: {part.strip()} runs backwards")
        if first < 1:
            raise UsageError(f"bad instance list {text!r}: instance counts must be at least 1")
        if last > MAX_INSTANCES:
            raise UsageError(f"bad instance list {text!r}: at most {MAX_INSTANCES} instances")
        values.update(range(first, last + 1))
    return tuple(sorted(values))


def parse_memory_mb(text: str) -> int:
    """``--vm-memory``: ``2G``, ``1536M``, ``1.5GiB`` or a plain number of MiB."""
    m = re.fullmatch(r"\s*([0-9]{1,12}(?:\.[0-9]{1,6})?)\s*([mMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"bad --vm-memory {text!r}: expected e.g. 2G or 1536M")
    value = float(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)
    if value < 128:
        raise UsageError(f"--vm-memory {text} is too small: a guest needs at least 128 MiB")
    if value > MAX_VM_MEMORY_MB:
        raise UsageError(f"--vm-memory {text} is more than {MAX_VM_MEMORY_MB >> 20} TiB")
    return int(value)


MAX_SECONDS = 7 * 86400  # a duration or a timeout: at most a week
MAX_BATCH = 1 << 20  # images per query


def check_positive(name: str, value: float, allow_zero: bool = False,
                   at_most: float | None = None) -> None:
    """A count or a duration: positive (or zero), a finite number, at most ``at_most``."""
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, not {shown}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'at least 0' if allow_zero else 'positive'}, "
                         f"not {shown}")
    if at_most is not None and value > at_most:
        raise UsageError(f"{name} must be at most {at_most:g}, not {shown}")
