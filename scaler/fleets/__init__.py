"""Fleets: the machines a run's workers go to when they are not this one.

``--fleet ssh:FILE`` (long form of ``--hosts FILE``) and ``--fleet slurm[:PARTITION]`` are the
built-in providers, one module each, registered here by name. Code outside this package asks
:func:`wanted` ("is there a fleet, and which") and never compares provider names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scaler.errors import UsageError
from scaler.fleets.base import Fleet, FleetChoice, FleetProvider

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.settings import Settings

__all__ = ["Fleet", "FleetChoice", "FleetProvider", "get", "open_fleet", "parse", "wanted"]

BUILTIN = {"ssh": "scaler.fleets.ssh", "slurm": "scaler.fleets.slurm"}
_PROVIDERS: dict[str, FleetProvider] = {}


def register(provider: FleetProvider) -> FleetProvider:
    _PROVIDERS[provider.name] = provider
    return provider


def get(name: str) -> FleetProvider:
    if name not in _PROVIDERS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])  # registers itself
    if name not in _PROVIDERS:  # a plug-in's (SCALER_PLUGINS, entry points)
        from scaler import plugins

        plugins.load()
        plugins.check()
    if name not in _PROVIDERS:
        raise UsageError(f"unknown --fleet {name!r}: choose from {help_text()}")
    return _PROVIDERS[name]


def help_text() -> str:
    for module in BUILTIN.values():
        importlib.import_module(module)
    return ", ".join(p.usage for p in _PROVIDERS.values())


def parse(text: str) -> FleetChoice:
    """``NAME`` or ``NAME:ARG``; UsageError for an unknown provider."""
    name, sep, arg = text.strip().partition(":")
    choice = FleetChoice(name, arg if sep else None)
    get(name)
    return choice


def wanted(settings: Settings) -> FleetChoice | None:
    """The fleet a run asks for (``--fleet``, or a provider's own field: ``--hosts``), or
    None: this machine."""
    for module in BUILTIN.values():
        importlib.import_module(module)
    for provider in _PROVIDERS.values():
        choice = provider.asked(settings)
        if choice is not None:
            return choice
    fleet = getattr(settings, "fleet", None)
    return parse(fleet) if fleet else None


def check(settings: Settings) -> None:
    """Validate the fleet's argument before any worker starts (UsageError)."""
    choice = wanted(settings)
    if choice is not None:
        get(choice.provider).check(choice)


async def open_fleet(settings: Settings) -> tuple[FleetProvider, Fleet] | None:
    choice = wanted(settings)
    if choice is None:
        return None
    provider = get(choice.provider)
    return provider, await provider.open(choice, settings)


def read_topologies(text: str, ready_timeout_s: float
                    ) -> tuple[FleetProvider, FleetChoice, dict[str, Topology]]:
    """Open the fleet ``--fleet text`` names, read each machine's topology, close it again
    (``scaler topology --fleet``, ``scaler plan --fleet``)."""
    import asyncio

    from scaler.settings import Settings

    choice = parse(text)
    provider = get(choice.provider)
    provider.check(choice)
    settings = Settings(fleet=str(choice), ready_timeout_s=ready_timeout_s)

    async def main() -> dict[str, Topology]:
        fleet = await provider.open(choice, settings)
        try:
            return dict(fleet.topologies)
        finally:
            close = getattr(fleet, "close", None)
            if close is not None:
                close()

    return provider, choice, asyncio.run(main())


def lock_cpus(settings: Settings, topology: Topology) -> frozenset[int] | None:
    """CPUs of this machine a fleet run measures (None: no fleet, the placements decide)."""
    choice = wanted(settings)
    if choice is None:
        return None
    return get(choice.provider).lock_cpus(choice, settings, topology)
