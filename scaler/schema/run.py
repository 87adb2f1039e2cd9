"""The run document as a whole (``run.json`` after its upgrades)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaler.schema.checks import (
    FLAG,
    LIST,
    OBJECT,
    POSITIVE_INT,
    STATUSES,
    TEXT,
    FieldError,
    one_of,
)
from scaler.schema.part import Part
from scaler.schema.parts import Effective, Group, Point, Requested


@dataclass(frozen=True, kw_only=True)
class Run(Part):
    """A run: what was asked and run with, its groups (one per measured or simulated
    window) and, when saved with them, its points across repeats."""

    schema_version: int | None = None
    scenario: str | None = None
    status: str | None = None
    partial_reasons: list[str] | None = None
    notes: list[str] | None = None
    created: str | None = None
    command: list[str] | None = None
    requested: Requested = Requested()
    effective: Effective = Effective()
    host: Mapping[str, Any] | None = None
    emulated: bool | None = None
    simulated: bool | None = None
    groups: tuple[Group, ...] = ()
    points: tuple[Point, ...] | None = None
    summary: Mapping[str, Any] | None = None

    FIELDS = {"schema_version": POSITIVE_INT, "status": one_of(*STATUSES), "scenario": TEXT,
              "partial_reasons": LIST, "notes": LIST, "created": TEXT, "command": LIST,
              "host": OBJECT, "emulated": FLAG, "simulated": FLAG, "groups": LIST,
              "points": LIST, "summary": OBJECT}
    NOT_NULL = ("requested", "effective", "groups")
    PARTS = {"requested": Requested, "effective": Effective}
    DECIDED = ("multistream", "server")  # scenarios decided on a latency bound

    @classmethod
    def from_dict(cls, d: Any, where: str = "", required: tuple[str, ...] | None = None,
                  flat: bool = False) -> Run:
        run = super().from_dict(d, where, required, flat)
        if run.scenario in cls.DECIDED:  # their readers decide on the bound and statistic
            for key in ("latency_bound_ms", "stat"):
                if run.requested.get(key) is None:
                    rule = Requested.FIELDS[key]
                    raise FieldError(f"requested.{key}", None, rule(None) or "a value")
        return run
    LISTS = {"groups": Group, "points": Point}

    @classmethod
    def top(cls, doc: dict[str, Any]) -> Run:
        """The typed top of ``doc``: all but its groups and points (their readers take
        them), checked."""
        return cls.from_dict({k: v for k, v in doc.items() if k not in ("groups", "points")})

    @property
    def saved_points(self) -> bool:
        """The run was saved with its points (else readers rebuild them from its groups)."""
        return self.points is not None

    def group(self, gid: Any) -> Group | None:
        """The group of id ``gid``."""
        return next((g for g in self.groups if g.id == gid), None)
