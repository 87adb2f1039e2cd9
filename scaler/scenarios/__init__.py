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
from dataclasses import replace
from pathlib import Path
from typing import Any

from affinity import Topology, read_topology
from scaler import fleets, placements
from scaler.engines import EngineSpec
from scaler.errors import ScalerError
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
    from scaler.engines.model_files import check_model_file

    topology = read_topology(sysfs_root)
    spec = check_spec(EngineSpec(engine=settings.engine or "auto", precision=settings.precision,
                                 model=settings.model, batch=settings.batch,
                                 cache_dir=settings.cache_dir), topology.isa)
    for style in settings.threading[1:]:  # every style the engine must express, or refused
        check_spec(replace(spec, threading=style), topology.isa)
    spec = check_spec(replace(spec, threading=settings.threading[0]), topology.isa)
    for cap in settings.isa:  # every cap: the engine must honour it and the CPU run it
        check_spec(replace(spec, isa=cap), topology.isa)
    check_model_file(spec.model)  # its bytes are its format, before anything starts
    for name in settings.placements:
        placements.get(name).configured(settings).preflight(settings, topology, spec)
    from scaler import footprint

    footprint.preflight(settings, topology, spec)  # every model's workers fit, before any starts
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

    Ctrl-C, SIGTERM and SIGHUP (the terminal closed) cancel the scenario: the current group
    is stopped, what it measured is kept, the run is saved as partial and
    ``session.interrupted`` is set. An exception that escapes a group (a refusal, a second
    Ctrl-C) leaves the run saved as partial with the reason, and propagates.
    ``started`` receives the session as soon as it exists.
    """
    spec, topology = prepared or prepare(settings)
    session = Session(name, settings, spec, out, topology, reporter, target)
    session.lock = lock  # the CPUs this run holds (scaler.lock): recorded at every save
    if started is not None:
        started.append(session)
    with _signals_cancel(asyncio.current_task(), session, signal.SIGINT, signal.SIGTERM,
                         signal.SIGHUP):
        await session.setup()  # before the run folder exists: a dead host leaves no run
        refused = False  # a refusal before any group was measured leaves no run folder
        try:
            await SCENARIOS[name](session)
        except BaseException as exc:  # the run is not complete: say why, keep what it has
            refused = isinstance(exc, ScalerError) and not session.groups
            if not session.stopped or not isinstance(exc, asyncio.CancelledError):
                session.partial_reasons.append(_reason(exc, session.stop_cause))
            if isinstance(exc, asyncio.CancelledError):
                session.interrupted = True
            raise
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # a second Ctrl-C: still save
                await asyncio.shield(session.pool.close())
            session.close()
            if not refused:
                session.save(finished=True)
    return session


def _reason(exc: BaseException, cause: str = "interrupted") -> str:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return cause
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"stopped by an error: {text}"


HANGUP = "hung up (SIGHUP: the terminal closed)"


@contextlib.contextmanager
def _signals_cancel(task: asyncio.Task[Any] | None, session: Session,
                    *signals: int) -> Iterator[None]:
    """Within the block, these signals cancel the task instead of raising KeyboardInterrupt.
    SIGHUP first points stdout and stderr at /dev/null (the terminal is gone: writing to it
    would fail) and names itself as the reason the run stopped."""
    loop = asyncio.get_running_loop()
    assert task is not None

    def stop(sig: int) -> None:
        if sig == signal.SIGINT:
            from scaler import interrupts

            interrupts.count()
        if sig == signal.SIGHUP and session.stop_cause != HANGUP:
            detach_terminal()
            session.stop_cause = HANGUP
        task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        from scaler import interrupts

        interrupts.once()  # the loop put Python's default back: a second Ctrl-C waits


def detach_terminal() -> None:
    """Point fds 0, 1 and 2 at /dev/null: what is said after a hangup goes nowhere instead of
    failing (EIO) in the middle of saving."""
    import os

    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
