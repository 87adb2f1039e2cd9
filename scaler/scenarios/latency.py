"""Latency: one instance at batch 1 per placement (bare metal against VM-like); the figures
are its latency percentiles. Repeats interleave the placements (all once, then all again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.scenarios.styles import layouts
from scaler.threadstyles import series_name

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    s.reporter.plan(s.settings.repeat * len(layouts(s)))
    for r in range(s.settings.repeat):
        if s.stopped:
            return
        await s.fresh_workers()
        for placement, style in layouts(s):
            if s.stopped:
                return
            await s.group(placement, 1, 1, repeat=r, threading=style,
                          series=series_name(placement, style, s.settings.threading))
