"""Scaling: 1..N concurrent batch-1 instances, one series per placement."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    for placement in s.settings.placements:
        for n in s.settings.instances:
            if s.stopped:
                return
            await s.group(placement, n, 1, series=placement)
