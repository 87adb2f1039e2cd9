"""A plug-in made only of test code that uses every extension point a newcomer has: a
placement with an option of its own, a fleet provider and a target that describes itself.

- ``stride``: instance k pinned to usable CPU number ``(first + k) mod usable``, one thread,
  where ``first`` is its own option ``--stride-first K`` (run.json: ``requested.stride_first``);
  it joins the suite as a VM-like side (``suite_side``).
- ``--fleet loopback``: a "fleet" of this one machine, whose workers start through
  ``CountingTarget``: a local target that counts what it started and says so in
  ``describe()`` (run.json: ``targets.<placement>``); the fleet describes itself under
  ``loopback``.

Loaded by ``SCALER_PLUGINS=tests.scaler.plugin_extend`` (with the checkout on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from affinity import read_topology
from scaler import fleets
from scaler.errors import UsageError
from scaler.fleets.base import FleetChoice, FleetProvider
from scaler.placements import GroupPlan, InstancePlan, Placement
from scaler.placements import register as register_placement
from scaler.placements.options import option
from scaler.targets import register as register_target
from scaler.targets.local import LocalTarget

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.settings import Settings
    from scaler.targets import Target
    from scaler.worker.protocol import WorkerRequest


@dataclass(frozen=True)
class StrideOptions:
    first: int = option(0, metavar="K", help="the usable CPU (counted from 0) instance 0 is "
                        "pinned to; instance k takes the k-th after it")


class Stride(Placement):
    """Instance k on one usable CPU, ``--stride-first`` CPUs in (wrapping around)."""

    name = "stride"
    summary = "instance k on usable CPU (first + k) mod usable (test plug-in)"
    marker = "+"
    options = StrideOptions
    suite_side = "vm-like"

    def check_options(self, options: Any) -> None:
        if options.first < 0:
            raise UsageError(f"--stride-first must be at least 0, not {options.first}")

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        usable = topology.usable_cpus
        node_of = {c: core.node for core in topology.usable_cores for c in core.cpus}
        instances = []
        for k in range(n):
            cpu = usable[(self.chosen.first + k) % len(usable)]
            instances.append(InstancePlan(k, 1, (cpu,), (node_of[cpu],), (cpu,),
                                          (node_of[cpu],)))
        return GroupPlan(self.name, tuple(instances), {
            "cores": len(topology.usable_cores), "cpus": len(usable),
            "oversubscribed": n > len(usable), "oversubscription": n / len(usable),
            "stride_first": self.chosen.first})


@register_target
class CountingTarget(LocalTarget):
    """Local workers, counted: ``describe`` tells the run how many it started."""

    name = "counting"

    def __init__(self, via: str) -> None:
        super().__init__()
        self.via, self.started = via, 0

    async def start(self, request: WorkerRequest) -> asyncio.subprocess.Process:
        self.started += 1
        return await super().start(request)

    def describe(self) -> dict[str, Any]:
        return {"via": self.via, "started": self.started}


class OnFleet(Placement):
    """A placement on the loopback fleet: its own plan (with the run's options: the session
    wraps the placement ``configured`` for the run) on the fleet's machine, the fleet's
    target."""

    def __init__(self, inner: Placement, fleet: LoopbackFleet) -> None:
        self.inner, self.fleet = inner, fleet
        self.name = inner.name  # type: ignore[misc]
        self.summary = inner.summary  # type: ignore[misc]
        self.baseline = inner.baseline  # type: ignore[misc]

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        return self.inner.plan(self.fleet.topologies["here"], n, smt=smt,
                          cores_per_instance=cores_per_instance)

    def make_target(self, settings: Settings, topology: Topology) -> Target:
        return self.fleet.target()


class LoopbackFleet:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topologies = {"here": read_topology()}
        self._target: CountingTarget | None = None

    def wrap(self, placement: Placement) -> Placement:
        return OnFleet(placement, self)

    def target(self) -> Target:
        if self._target is None:
            self._target = CountingTarget("loopback")
        return self._target

    def describe(self) -> dict[str, Any]:
        return {"machine": platform.node(),
                "cpus": list(self.topologies["here"].usable_cpus)}


class Loopback(FleetProvider):
    name = "loopback"
    usage = "loopback"
    record_key = "loopback"

    def check(self, choice: FleetChoice) -> None:
        if choice.arg:
            raise UsageError("--fleet loopback takes no argument")

    async def open(self, choice: FleetChoice, settings: Settings) -> LoopbackFleet:
        return LoopbackFleet(settings)

    def lock_cpus(self, choice: FleetChoice, settings: Settings,
                  topology: Topology) -> frozenset[int]:
        return frozenset(topology.usable_cpus)  # its workers run on this machine


register_placement(Stride())
fleets.register(Loopback())
