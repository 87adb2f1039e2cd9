"""Large-batch throughput: one instance at ``--batch`` (1024 by default) per placement;
images/s. Repeats interleave the placements."""

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
            await s.group(placement, 1, s.settings.batch, repeat=r, threading=style,
                          series=series_name(placement, style, s.settings.threading))
