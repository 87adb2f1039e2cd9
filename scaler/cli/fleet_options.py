"""Options of the fleet (``--hosts``, ``--fleet``, ``--ssh-parallel``) shared by the scenario
commands, checked and turned into settings (kept apart from ``scaler.cli.run``)."""

from __future__ import annotations

from typing import Annotated

import typer

from scaler.errors import UsageError

DEFAULT_SSH_PARALLEL = 32
MAX_SSH_PARALLEL = 1024

SshParallel = Annotated[int, typer.Option(
    "--ssh-parallel", help="with --hosts: at most this many ssh processes connecting at once "
    "(topology reads, worker starts until their ready report)")]


def check_ssh_parallel(value: int) -> int:
    from scaler.settings import check_positive

    check_positive("--ssh-parallel", value, at_most=MAX_SSH_PARALLEL)
    return value


def fleet_settings(hosts: str | None, fleet: str | None) -> dict[str, str | None]:
    """``--hosts FILE`` and ``--fleet`` as settings, each provider saying which fields ask
    for it: ``--fleet ssh:FILE`` is ``--hosts FILE``."""
    from scaler import fleets

    if fleet is None:
        return {} if hosts is None else fleets.get("ssh").settings_of(
            fleets.FleetChoice("ssh", hosts))
    if hosts is not None:
        raise UsageError("give --hosts FILE or --fleet, not both (--fleet ssh:FILE is --hosts "
                         "FILE)")
    choice = fleets.parse(fleet)
    return fleets.get(choice.provider).settings_of(choice)
