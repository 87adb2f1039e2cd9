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
    """``--hosts FILE`` and ``--fleet`` as settings: ``ssh:FILE`` is ``--hosts FILE``."""
    if fleet is None:
        return {"hosts_file": hosts, "fleet": None}
    from scaler import fleets

    if hosts is not None:
        raise UsageError("give --hosts FILE or --fleet, not both (--fleet ssh:FILE is --hosts "
                         "FILE)")
    choice = fleets.parse(fleet)
    if choice.provider == "ssh":
        if not choice.arg:
            raise UsageError("--fleet ssh needs the hosts file: --fleet ssh:FILE")
        return {"hosts_file": choice.arg, "fleet": None}
    return {"hosts_file": None, "fleet": str(choice)}
