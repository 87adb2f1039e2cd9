"""Large-batch throughput: one instance at ``--batch`` (1024 by default) per placement;
images/s. Repeats interleave the placements."""

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
            await s.group(placement, 1, s.settings.batch, series=placement, repeat=r)
