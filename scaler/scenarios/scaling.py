"""Scaling: 1..N concurrent batch-1 instances, one series per placement (and
``--threading`` style).

With ``--repeat K`` every group is measured K times, interleaved: all groups once (each
placement, each N), then all again with fresh workers, so slow drift of the machine hits
every group alike. Within a repeat, warm workers are reused between groups that ask for the
same instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.scenarios.styles import layouts
from scaler.threadstyles import series_name

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    s.reporter.plan(s.settings.repeat * len(layouts(s)) * len(s.settings.instances))
    for r in range(s.settings.repeat):
        await s.fresh_workers()
        for placement, style in layouts(s):
            for n in s.settings.instances:
                if s.stopped:
                    return
                await s.group(placement, n, 1, repeat=r, threading=style,
                              series=series_name(placement, style, s.settings.threading))
