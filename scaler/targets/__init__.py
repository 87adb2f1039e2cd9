"""Where a worker process runs. A target starts ``python -m scaler.worker --spec JSON`` for one
instance and hands back an asyncio subprocess whose stdin/stdout carry the worker protocol and
whose stderr carries diagnostics. A target may boot a VM or open an SSH session for it: the
request names the instance's partition, which such targets need.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from scaler.worker.protocol import STREAM_LIMIT, WorkerRequest

__all__ = ["STREAM_LIMIT", "Target", "WorkerRequest"]


class Target(Protocol):
    name: str
    emulated: bool  # timings are not real (a VM without hardware virtualization)

    async def start(self, request: WorkerRequest) -> asyncio.subprocess.Process:
        """Start one worker; the process must lead its own process group (killpg)."""
        ...
