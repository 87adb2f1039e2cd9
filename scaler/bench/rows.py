"""The bench table's rows: a collector and the helpers every section's rows use."""

from __future__ import annotations

from typing import Any


def section_of(results: dict[str, Any], name: str) -> dict[str, Any]:
    return results.get("sections", {}).get(name) or {}


def cond(section: dict[str, Any]) -> str:
    """Load average at the start and the share of CPU others used during the section."""
    m = section.get("machine") or {}
    if not m:
        return ""
    return f"load {m['loadavg_start'][0]:.2f}, others {m['foreign_share']:.0%}"


def infers(engine: str) -> bool:
    """Whether ``engine`` runs a model (the registry says; an engine no longer registered
    in a re-judged old file counts as one)."""
    from scaler.engines.registry import engines

    known = engines().get(engine)
    return known is None or known.infers


class Rows:
    """Collects table rows; in a ``--quick`` run targets are shown but not judged."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.out: list[dict[str, Any]] = []

    def add(self, section: str, figure: str, value: str, target: str = "",
            met: bool | str | None = None, cond: str = "") -> None:
        if self.quick and target:  # tiny model, short windows: nothing to judge
            target, met = f"({target}: not judged in --quick)", None
        self.out.append({"section": section, "figure": figure, "value": value,
                         "target": target, "met": met, "conditions": cond})


