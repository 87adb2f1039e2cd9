"""The parts of a run document: one instance of a group, a group's layout, a group (closed
loop or served), a point across repeats, and the run's effective and requested settings.

Each field a reader interprets is typed here with its rule (``scaler.schema.checks``); keys
that are not are kept as they were read. The rules are the read boundary's: a run.json
whose value breaks one is refused in one line naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaler.schema.checks import (
    COUNT,
    FIGURE,
    FLAG,
    LATENCY,
    LIST,
    OBJECT,
    POSITIVE,
    POSITIVE_INT,
    TEXT,
    TEXTS,
    FieldError,
    list_of,
    summaries,
)
from scaler.schema.part import Part

Latency = Mapping[str, Any]  # scaler.stats.latency_ms's keys: mean, p50, ..., samples


@dataclass(frozen=True, kw_only=True)
class Instance(Part):
    """One instance of a group (``per_instance[k]``): its partition, what its worker
    reported, its samples summary (``queries`` closed loop, ``requests`` served)."""

    index: int | None = None
    status: str | None = None
    partition: Mapping[str, Any] | None = None
    threads: int | None = None
    queries: int | None = None
    requests: int | None = None
    throughput_ips: float | None = None
    latency_ms: Latency | None = None

    FIELDS = {"index": COUNT, "status": TEXT, "partition": OBJECT, "threads": COUNT,
              "queries": COUNT, "requests": COUNT, "throughput_ips": FIGURE,
              "latency_ms": OBJECT}
    WRITTEN = ("index", "status")
    LATENCY = ("latency_ms",)

    @property
    def samples(self) -> int | None:
        """How many samples the instance kept (queries, or requests it served)."""
        return self.queries if self.queries is not None else self.requests


@dataclass(frozen=True, kw_only=True)
class Layout(Part):
    """The layout keys a placement's plan records in its group (``GroupPlan.layout``):
    physical cores and CPUs it measures on, oversubscription, the plan's warnings, cores per
    instance when sized, and per host for a fleet. A placement's own keys stay in the
    group's ``extra``."""

    cores: int | None = None
    cpus: int | None = None
    oversubscribed: bool | None = None
    oversubscription: float | None = None
    plan_warnings: list[str] | None = None
    cores_per_instance: int | None = None
    hosts: Mapping[str, Any] | None = None

    FIELDS = {"cores": COUNT, "cpus": COUNT, "oversubscribed": FLAG,
              "oversubscription": FIGURE, "plan_warnings": TEXTS,
              "cores_per_instance": POSITIVE_INT, "hosts": OBJECT}


COMMON = {  # a group's and a point's
    "placement": TEXT, "instances": POSITIVE_INT, "batch": POSITIVE_INT,
    "throughput_ips": FIGURE, "others_cpu_share": FIGURE, "noisy": FLAG, "emulated": FLAG,
    "target_qps": POSITIVE, "achieved_qps": FIGURE, "engine": TEXT, "precision": TEXT,
    "model": TEXT, "latency_ms": OBJECT,
    "series": TEXT, "threading": TEXT, "isa_cap": TEXT, "layout": TEXT, "simulated": FLAG,
    "probe": FLAG, "valid": FLAG, "bound_failed": FLAG, "invalid_reasons": TEXTS,
    "warnings": TEXTS,
}


@dataclass(frozen=True, kw_only=True)
class Group(Part):
    """One group: N instances of one placement measured (or simulated) together once, a
    repeat of its point; closed loop, or served at ``target_qps`` (the server scenario).
    ``plan`` holds its layout keys."""

    id: int | None = None
    placement: str | None = None
    instances: int | None = None
    batch: int | None = None
    engine: str | None = None
    precision: str | None = None
    model: str | None = None
    target: str | None = None
    series: str | None = None
    threading: str | None = None
    isa_cap: str | None = None
    layout: str | None = None  # a multistream probe's layout name ("pinned x2")
    label: str | None = None
    repeat: int | None = None
    status: str | None = None
    errors: list[Any] | None = None
    wall_s: float | None = None
    queries: int | None = None
    throughput_ips: float | None = None
    latency_ms: Latency | None = None
    per_instance: tuple[Instance, ...] | None = None
    per_host: Mapping[str, Any] | None = None
    noise: Mapping[str, Any] | None = None
    noisy: bool | None = None
    others_cpu_share: float | None = None
    speed_probe: Mapping[str, Any] | None = None
    superseded: bool | None = None
    emulated: bool | None = None
    simulated: bool | None = None
    probe: bool | None = None
    warnings: list[str] | None = None
    target_qps: float | None = None
    achieved_qps: float | None = None
    generator: Mapping[str, Any] | None = None
    valid: bool | None = None
    bound_failed: bool | None = None
    invalid_reasons: list[str] | None = None
    plan: Layout = Layout()

    FIELDS = {**COMMON, "id": COUNT, "repeat": COUNT, "status": TEXT, "queries": COUNT,
              "wall_s": FIGURE, "per_instance": LIST, "errors": LIST, "label": TEXT,
              "target": TEXT, "per_host": OBJECT, "noise": OBJECT, "speed_probe": OBJECT,
              "superseded": FLAG, "generator": OBJECT}
    REQUIRED = ("id", "placement", "instances")
    NOT_NULL = ("per_instance", "errors", "warnings", "invalid_reasons")
    WRITTEN = ("target", "engine", "precision", "model", "batch", "status", "errors",
               "per_instance")
    LATENCY = ("latency_ms",)
    LISTS = {"per_instance": Instance}
    FLAT = {"plan": Layout}

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def contended(self) -> bool:
        """The speed probe found its window slower than the machine's idle speed."""
        return bool((self.speed_probe or {}).get("contended"))


@dataclass(frozen=True, kw_only=True)
class Point(Part):
    """A measured figure across its repeats (``scaler.points``): the median throughput with
    its interval, pooled latency, conditions; for the server scenario its rate and
    validity."""

    placement: str | None = None
    instances: int | None = None
    batch: int | None = None
    engine: str | None = None
    precision: str | None = None
    model: str | None = None
    series: str | None = None
    threading: str | None = None
    isa_cap: str | None = None
    layout: str | None = None
    groups: list[int] | None = None
    repeats: int | None = None
    complete: int | None = None
    throughput_ips: float | None = None
    ci95_ips: list[float] | None = None
    repeats_ips: list[float] | None = None
    min_ips: float | None = None
    max_ips: float | None = None
    cv: float | None = None
    unstable: bool | None = None
    noisy: bool | None = None
    contended: bool | None = None
    remeasured: int | None = None
    others_cpu_share: float | None = None
    oversubscribed: bool | None = None
    emulated: bool | None = None
    simulated: bool | None = None
    probe: bool | None = None
    latency_ms: Latency | None = None
    latency_repeats: list[Mapping[str, Any]] | None = None
    warnings: list[str] | None = None
    per_instance_ips: list[float] | None = None
    per_host_ips: Mapping[str, Any] | None = None
    target_qps: float | None = None
    achieved_qps: float | None = None
    valid: bool | None = None
    bound_failed: bool | None = None
    invalid_reasons: list[str] | None = None
    generator_lag_p99_ms: float | None = None

    FIELDS = {**COMMON, "oversubscribed": FLAG, "repeats": COUNT, "complete": COUNT,
              "ci95_ips": list_of(FIGURE, 2), "repeats_ips": list_of(FIGURE),
              "min_ips": FIGURE, "max_ips": FIGURE, "cv": FIGURE,
              "groups": list_of(COUNT, nulls=True), "unstable": FLAG, "contended": FLAG,
              "per_instance_ips": list_of(FIGURE, nulls=True),
              "remeasured": COUNT, "latency_repeats": summaries("mean", "p50", "p99"),
              "per_host_ips": OBJECT, "generator_lag_p99_ms": LATENCY}
    # what scaler.points.point_of always writes and readers take as it is
    REQUIRED = ("placement", "instances", "batch", "engine", "precision", "groups", "repeats",
                "complete", "repeats_ips", "latency_repeats", "warnings")
    NOT_NULL = ("invalid_reasons",)
    LATENCY = ("latency_ms",)

    @classmethod
    def from_dict(cls, d: Any, where: str = "", required: tuple[str, ...] | None = None,
                  flat: bool = False) -> Point:
        point = super().from_dict(d, where, required, flat)
        if point.complete and point.throughput_ips is None:  # a complete repeat has a figure
            raise FieldError(f"{where}.throughput_ips", None,
                             f"{FIGURE(None)} (the point has {point.complete} complete "
                             "repeats)")
        return point


@dataclass(frozen=True, kw_only=True)
class Effective(Part):
    """What the run ran with (engine, precision, model, run rules)."""

    engine: str | None = None
    precision: str | None = None
    model: str | None = None
    rules: Mapping[str, Any] | None = None

    FIELDS = {"engine": TEXT, "precision": TEXT, "model": TEXT, "rules": OBJECT}


@dataclass(frozen=True, kw_only=True)
class Requested(Part):
    """What the command asked for (the keys readers interpret)."""

    repeat: int | None = None
    batch: int | None = None
    latency_bound_ms: float | None = None
    stat: str | None = None
    instances: list[int] | None = None
    min_duration_s: float | None = None
    min_queries: int | None = None
    target_qps: float | None = None
    max_batch: int | None = None

    FIELDS = {"repeat": POSITIVE_INT, "batch": POSITIVE_INT, "latency_bound_ms": POSITIVE,
              "stat": TEXT, "instances": list_of(POSITIVE_INT), "min_duration_s": FIGURE,
              "min_queries": COUNT, "target_qps": POSITIVE, "max_batch": POSITIVE_INT}
