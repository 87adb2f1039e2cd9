"""The ``ssh`` fleet provider: the machines of a ``--hosts`` file (``--fleet ssh:FILE``),
probed and reached over OpenSSH (``scaler.hosts``, ``scaler.placements.fleet``,
``scaler.targets.ssh`` do the work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.errors import UsageError
from scaler.fleets import register
from scaler.fleets.base import Fleet, FleetChoice, FleetProvider

if TYPE_CHECKING:
    from scaler.settings import Settings


class SshProvider(FleetProvider):
    name = "ssh"
    usage = "ssh:FILE"
    record_key = "hosts"
    checks_own_memory = True  # each host's, once probed (FleetPlacement)

    def settings_of(self, choice: FleetChoice) -> dict[str, str | None]:
        """``--fleet ssh:FILE`` is ``--hosts FILE``: the hosts file, no --fleet."""
        if not choice.arg:
            raise UsageError("--fleet ssh needs the hosts file: --fleet ssh:FILE")
        return {"hosts_file": choice.arg, "fleet": None}

    def asked(self, settings: Settings) -> FleetChoice | None:
        return FleetChoice(self.name, settings.hosts_file) if settings.hosts_file else None

    def check(self, choice: FleetChoice) -> None:
        from scaler.hosts import load_hosts

        if not choice.arg:
            raise UsageError("--fleet ssh needs the hosts file: --fleet ssh:FILE")
        load_hosts(choice.arg)

    async def open(self, choice: FleetChoice, settings: Settings) -> Fleet:
        from scaler.placements.fleet import Fleet as SshFleet

        assert choice.arg is not None
        # the --hosts fleet as it opens itself: --ssh-parallel bounds its ssh processes
        return await SshFleet.open(choice.arg, getattr(settings, "ssh_parallel", 32))


register(SshProvider())
