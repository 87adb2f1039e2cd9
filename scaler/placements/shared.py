"""``shared``: N unpinned processes, each sized for the whole machine (threads = every usable
CPU), as a bare-metal user runs N copies. The baseline the other placements are compared to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaler.errors import UsageError
from scaler.placements.base import DryRunView, GroupPlan, InstancePlan, Placement, register

if TYPE_CHECKING:
    from affinity import Plan, Topology
    from scaler.settings import Settings


class Shared(Placement):
    name = "shared"
    summary = "N unpinned processes, each with threads for the whole machine (bare metal)"
    marker = "o"
    baseline = True
    suite_side = "baseline"

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        usable = topology.usable_cpus
        cores = len(topology.usable_cores)
        threads = len(usable)
        instances = tuple(InstancePlan(k, threads) for k in range(n))
        return GroupPlan(self.name, instances, {
            "cores": cores, "cpus": len(usable), "oversubscribed": n > cores,
            "oversubscription": n * threads / len(usable)})

    def notes(self, settings: Settings) -> list[str]:
        if settings.cores_per_instance:
            return ["shared instances ignore --cores-per-instance: each is sized for the whole "
                    "machine (the study's bare-metal instances)"]
        return []

    def dry_run(self, topology: Topology, plan: Plan, settings: Settings) -> DryRunView | None:
        raise UsageError("--placement shared: shared instances are unpinned and have no "
                         "partitions to show (plan shows pinned or vm partitions)")


register(Shared())
