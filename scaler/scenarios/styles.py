"""The (placement, threading style) pairs a scenario measures, placements outermost."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.session import Session


def layouts(s: Session) -> list[tuple[str, str]]:
    """Every placement under every ``--threading`` style, in the order given."""
    return [(p, style) for p in s.settings.placements for style in s.settings.threading]
