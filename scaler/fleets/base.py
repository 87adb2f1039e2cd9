"""The fleet provider interface: where a run's workers go when it is not this machine.

A provider turns ``--fleet NAME[:ARG]`` into an opened fleet: ``check`` validates the
argument before anything starts (a missing file, a partition that does not exist, no client
tools: :class:`~scaler.errors.UsageError`), ``open`` reaches the machines (an SSH probe, a
Slurm allocation) and reads each one's topology, and the opened :class:`Fleet` wraps each
placement so that it plans per machine on that machine's own topology and starts workers
through the fleet's target. ``lock_cpus`` says which CPUs of *this* machine the run measures
(none for a remote fleet). ``close`` gives back whatever the fleet holds (an allocation);
it is called once the workers are gone, and again harmlessly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.placements.base import Placement
    from scaler.settings import Settings
    from scaler.targets import Target


@dataclass(frozen=True)
class FleetChoice:
    """``--fleet provider[:arg]`` as given (``--hosts FILE`` is ``ssh`` with ``FILE``)."""

    provider: str
    arg: str | None = None

    def __str__(self) -> str:
        return self.provider if self.arg is None else f"{self.provider}:{self.arg}"


class Fleet(Protocol):
    """An opened fleet: machines probed, topologies known."""

    topologies: dict[str, Topology]

    def wrap(self, placement: Placement) -> Placement: ...

    def target(self) -> Target: ...

    def describe(self) -> dict[str, Any]: ...
    # optional: ``close() -> None`` gives back what the fleet holds (an allocation)


class FleetProvider:
    """A fleet back-end; subclasses set ``name``, ``usage`` and the methods."""

    name: ClassVar[str]
    usage: ClassVar[str]  # how --fleet names it, e.g. "slurm[:PARTITION]"
    # the run document's key for ``Fleet.describe()`` (ssh keeps "hosts" as before)
    record_key: ClassVar[str]

    # the fleet's machines check their own memory once opened (the local preflight of
    # scaler.footprint is not theirs); False: the workers may run on this machine
    checks_own_memory: ClassVar[bool] = False

    def settings_of(self, choice: FleetChoice) -> dict[str, Any]:
        """The ``Settings`` fields that ask for this fleet (``--fleet NAME[:ARG]``)."""
        return {"fleet": str(choice)}

    def asked(self, settings: Settings) -> FleetChoice | None:
        """The choice a run's settings make of this provider by a field of its own (ssh:
        ``--hosts FILE``), or None; ``--fleet`` itself is read by ``fleets.wanted``."""
        return None

    def check(self, choice: FleetChoice) -> None:
        """Validate the argument before anything starts (UsageError when it cannot work)."""

    async def open(self, choice: FleetChoice, settings: Settings) -> Fleet:
        raise NotImplementedError

    def step_options(self, cpus: tuple[int, ...], nodes: tuple[int, ...]) -> list[str]:
        """What the back-end would be asked for to confine a worker to this partition
        (``scaler plan --fleet``); none: the worker pins itself."""
        return []

    def lock_cpus(self, choice: FleetChoice, settings: Settings,
                  topology: Topology) -> frozenset[int]:
        """CPUs of this machine the run measures on (scaler.lock); a remote fleet: none."""
        return frozenset()
