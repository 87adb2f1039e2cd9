"""The layouts a scenario measures: every placement under every ``--threading`` style and
every ``--isa`` cap, placements outermost (layout names: ``scaler.layoutnames``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.layoutnames import with_cap

if TYPE_CHECKING:
    from scaler.session import Session


def layouts(s: Session) -> list[tuple[str, str]]:
    """(layout name, threading style) of every placement under every style and cap, in the
    order given; caps innermost, so that the groups of one placement sit together."""
    caps = s.settings.isa
    return [(with_cap(p, cap, caps), style) for p in s.settings.placements
            for style in s.settings.threading for cap in caps]
