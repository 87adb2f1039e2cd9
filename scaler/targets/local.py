"""Workers as child processes of the coordinator on this machine."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from scaler.targets import STREAM_LIMIT
from scaler.targets.base import Target, register

if TYPE_CHECKING:
    from scaler.worker.protocol import WorkerRequest


@register
class LocalTarget(Target):
    name = "local"
    emulated = False

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.env = env

    async def start(self, request: WorkerRequest) -> asyncio.subprocess.Process:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return await asyncio.create_subprocess_exec(
            self.python, "-m", "scaler.worker", *request.spec.argv(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=STREAM_LIMIT,
            start_new_session=True,  # Ctrl-C reaches the coordinator, which stops the workers
        )
