"""Large-batch throughput: one instance at ``--batch`` (1024 by default); images/s."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    for r in range(s.settings.repeat):
        if s.stopped:
            return
        await s.fresh_workers()
        await s.group(s.settings.placements[0], 1, s.settings.batch, repeat=r)
