"""The scenarios: each a sequence of groups measured in one session (one run folder).

``latency``, ``throughput``, ``scaling`` and ``multistream`` are the study's four tests, one
module each; a new scenario is a module with an ``async def run(session)`` added to
``SCENARIOS``. ``prepare`` checks the settings against this machine before any worker
starts; ``run_scenario`` runs one scenario into a new run folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from affinity import Topology, read_topology
from scaler import fleets, placements
from scaler.engines import EngineSpec
from scaler.lock import MeasurementLock
from scaler.progress import Reporter
from scaler.scenarios import latency, multistream, scaling, server, throughput
from scaler.session import Session
from scaler.settings import Settings
from scaler.targets import Target

SCENARIOS: dict[str, Callable[[Session], Awaitable[None]]] = {
    "latency": latency.run, "throughput": throughput.run, "scaling": scaling.run,
    "multistream": multistream.run, "server": server.run,
}


def prepare(settings: Settings, sysfs_root: str = "/sys") -> tuple[EngineSpec, Topology]:
    """Validate the settings against this machine before any worker starts."""
    from scaler.engines import check_spec

    topology = read_topology(sysfs_root)
    spec = check_spec(EngineSpec(engine=settings.engine or "auto", precision=settings.precision,
                                 model=settings.model, batch=settings.batch,
                                 cache_dir=settings.cache_dir), topology.isa)
    for name in settings.placements:
        placements.get(name).preflight(settings, topology, spec)
    fleets.check(settings)  # a hosts file, a partition, the client tools: before any worker
    return spec, topology


def notes(settings: Settings) -> list[str]:
    """What the placements of a run want said before it starts."""
    return [n for name in settings.placements for n in placements.get(name).notes(settings)]


async def run_scenario(name: str, settings: Settings, out: Path, reporter: Reporter,
                       target: Target | None = None,
                       prepared: tuple[EngineSpec, Topology] | None = None,
                       started: list[Session] | None = None,
                       lock: MeasurementLock | None = None) -> Session:
    """Run one scenario into a new run folder under ``out``; returns the session (saved).

    Ctrl-C and SIGTERM cancel the scenario: the current group is stopped, what it measured is
    kept, the run is saved as partial and ``session.interrupted`` is set. An exception that
    escapes a group (a refusal, a second Ctrl-C) leaves the run saved as partial with the
    reason, and propagates. ``started`` receives the session as soon as it exists.
    """
    spec, topology = prepared or prepare(settings)
    session = Session(name, settings, spec, out, topology, reporter, target)
    session.lock = lock  # the CPUs this run holds (scaler.lock): recorded at every save
    if started is not None:
        started.append(session)
    with _signals_cancel(asyncio.current_task(), signal.SIGINT, signal.SIGTERM):
        await session.setup()  # before the run folder exists: a dead host leaves no run
        try:
            await SCENARIOS[name](session)
        except BaseException as exc:  # the run is not complete: say why, keep what it has
            if not session.stopped or not isinstance(exc, asyncio.CancelledError):
                session.partial_reasons.append(_reason(exc))
            if isinstance(exc, asyncio.CancelledError):
                session.interrupted = True
            raise
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # a second Ctrl-C: still save
                await asyncio.shield(session.pool.close())
            session.close()
            session.save(finished=True)
    return session


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"stopped by an error: {text}"


@contextlib.contextmanager
def _signals_cancel(task: asyncio.Task[Any] | None, *signals: int) -> Iterator[None]:
    """Within the block, these signals cancel the task instead of raising KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in signals:
        loop.add_signal_handler(sig, task.cancel)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
