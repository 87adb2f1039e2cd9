"""The target interface: where a worker process runs, and what a run may ask of it.

A target starts ``python -m scaler.worker --spec JSON`` for one instance (:meth:`Target.start`)
and hands back an asyncio subprocess whose stdin/stdout carry the worker protocol and whose
stderr carries diagnostics. Everything else has a default here, so a target overrides only
what it has:

- :meth:`~Target.close`: give back what it holds once its workers are gone (a VM's files);
- :meth:`~Target.describe`: what the run document records about it (under ``targets``, by
  placement name: e.g. a VM's accelerator, kernel and QEMU), None for nothing;
- :meth:`~Target.instance_info`: what each instance's record adds (its VM, its host);
- :meth:`~Target.plan_memory`: check that a group's partitions can hold its workers' memory;
- :meth:`~Target.sweep_stale` (a class method): remove what targets of this type left behind
  in processes that died (a VM's temporary folder). :func:`sweep_stale` calls it for every
  registered target type before a run starts.

A target type registers with :func:`register` (the built-in ones are imported on demand).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.worker.protocol import WorkerRequest


class Target:
    """Where workers run; subclasses set ``name`` and ``start`` (and ``emulated`` when their
    timings are not real: a VM without hardware virtualization)."""

    name: str = "target"
    emulated: bool = False

    async def start(self, request: WorkerRequest) -> asyncio.subprocess.Process:
        """Start one worker; the process must lead its own process group (killpg)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the target holds; its workers are gone by then. Called again
        harmlessly."""

    def describe(self) -> dict[str, Any] | None:
        """What the run records about this target (None: nothing)."""
        return None

    def instance_info(self, index: int) -> dict[str, Any]:
        """What instance ``index``'s record adds (e.g. ``{"vm": {...}}``)."""
        return {}

    def plan_memory(self, partitions: Iterable[dict[str, Any] | None], memory_mb: int | None,
                    worker_gb: float) -> int | None:
        """Check (UsageError) that a group's partitions can hold its workers' memory; the
        memory each worker's machine gets (None: not this target's to size)."""
        return None

    @classmethod
    def sweep_stale(cls) -> list[str]:
        """Remove what targets of this type left behind in dead processes; what was removed."""
        return []


BUILTIN = ("scaler.targets.local", "scaler.targets.vm", "scaler.targets.ssh")
_TYPES: dict[str, type[Target]] = {}


def register(cls: type[Target]) -> type[Target]:
    """Register a target type (a class decorator); its ``sweep_stale`` runs before each run."""
    _TYPES[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def target_types() -> list[type[Target]]:
    """Every registered target type: the built-in ones (imported here) and plug-ins'."""
    for module in BUILTIN:
        importlib.import_module(module)
    from scaler import plugins

    plugins.load()
    return list(_TYPES.values())


def sweep_stale() -> list[str]:
    """Every target type's sweep of what dead runs left; what was removed."""
    return [path for cls in target_types() for path in cls.sweep_stale()]
