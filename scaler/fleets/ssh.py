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

    def check(self, choice: FleetChoice) -> None:
        from scaler.hosts import load_hosts

        if not choice.arg:
            raise UsageError("--fleet ssh needs the hosts file: --fleet ssh:FILE")
        load_hosts(choice.arg)

    async def open(self, choice: FleetChoice, settings: Settings) -> Fleet:
        from scaler.hosts import load_hosts
        from scaler.placements.fleet import Fleet as SshFleet
        from scaler.targets.ssh import probe_all

        assert choice.arg is not None
        hosts = load_hosts(choice.arg)
        return SshFleet(hosts, await probe_all(hosts))  # type: ignore[return-value]


register(SshProvider())
