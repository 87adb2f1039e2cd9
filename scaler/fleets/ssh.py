"""The ``ssh`` fleet provider: the machines of a ``--hosts`` file (``--fleet ssh:FILE``),
probed and reached over OpenSSH (``scaler.hosts``, ``scaler.placements.fleet``,
``scaler.targets.ssh`` do the work)."""

from __future__ import annotations

from dataclasses import replace
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

    def check(self, choice: FleetChoice) -> None:
        from scaler.hosts import load_hosts

        if not choice.arg:
            raise UsageError("--fleet ssh needs the hosts file: --fleet ssh:FILE")
        load_hosts(choice.arg)

    async def open(self, choice: FleetChoice, settings: Settings) -> Fleet:
        from scaler.placements.fleet import Fleet as SshFleet

        assert choice.arg is not None
        # the --hosts fleet as it opens itself: --ssh-parallel bounds its ssh processes
        opened = await SshFleet.open(replace(settings, hosts_file=choice.arg))
        assert opened is not None
        return opened  # type: ignore[return-value]


register(SshProvider())
