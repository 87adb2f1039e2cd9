"""Latency: one instance at batch 1 per placement (bare metal against VM-like); the figures
are its latency percentiles. Repeats interleave the placements (all once, then all again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    s.reporter.plan(s.settings.repeat * len(s.settings.placements))
    for r in range(s.settings.repeat):
        if s.stopped:
            return
        await s.fresh_workers()
        for placement in s.settings.placements:
            if s.stopped:
                return
            await s.group(placement, 1, 1, series=placement, repeat=r)
