"""Where a worker process runs. A target starts ``python -m scaler.worker ARGS`` and hands back
an asyncio subprocess whose stdin/stdout carry the worker protocol and whose stderr carries
the worker's diagnostics.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# longest protocol line a reader accepts: a ``samples`` message carries every query's times
STREAM_LIMIT = 1 << 28


class Target(Protocol):
    name: str

    async def start(self, worker_args: list[str]) -> asyncio.subprocess.Process:
        """Start one worker; the process must be in its own process group (killpg)."""
        ...
