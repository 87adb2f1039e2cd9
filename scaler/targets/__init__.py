"""Where a worker process runs. A target starts ``python -m scaler.worker --spec JSON`` for one
instance and hands back an asyncio subprocess whose stdin/stdout carry the worker protocol and
whose stderr carries diagnostics. A target may boot a VM or open an SSH session for it: the
request names the instance's partition, which such targets need. The interface, its optional
methods and the stale-state sweep are in :mod:`scaler.targets.base`.
"""

from __future__ import annotations

from scaler.targets.base import Target, register, sweep_stale
from scaler.worker.protocol import STREAM_LIMIT, WorkerRequest

__all__ = ["STREAM_LIMIT", "Target", "WorkerRequest", "register", "sweep_stale"]
