"""Where a worker process runs. A target starts ``python -m scaler.worker ARGS`` for one
instance and hands back an asyncio subprocess whose stdin/stdout carry the worker protocol and
whose stderr carries diagnostics. A target may boot a VM or open an SSH session for it: the
request names the instance's partition, which such targets need.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scaler.coordinator import WorkerRequest

# longest protocol line a reader accepts: a ``samples`` message carries every query's times
STREAM_LIMIT = 1 << 28


class Target(Protocol):
    name: str
    emulated: bool  # timings are not real (a VM without hardware virtualization)

    async def start(self, request: WorkerRequest) -> asyncio.subprocess.Process:
        """Start one worker; the process must lead its own process group (killpg)."""
        ...
