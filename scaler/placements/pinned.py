"""``pinned``: each instance confined to its own partition (CPUs by physical core, memory bound
to the partition's NUMA nodes, threads = its CPUs), as a VM would be.

Partitions share the machine out evenly, or are ``cores_per_instance`` cores each with the rest
of the machine idle (the study's fixed-size VMs). The plan itself always allows
oversubscription; ``check_oversubscription`` refuses a fixed-size plan that needs it unless
the user asked (``--oversubscribe``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from affinity import plan as plan_partitions
from scaler.placements.base import GroupPlan, InstancePlan, Placement, register

if TYPE_CHECKING:
    from affinity import Partition, Topology


class Pinned(Placement):
    name = "pinned"
    summary = "N processes, each pinned to its own cores and NUMA memory"
    marker = "s"
    suite_side = "vm-like"

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        the_plan = plan_partitions(topology, n, cores_per_instance, smt=smt, oversubscribe=True)
        instances = tuple(self.instance(k, part, topology)
                          for k, part in enumerate(the_plan.partitions))
        return GroupPlan(self.name, instances, {
            "cores": len(topology.usable_cores), "cpus": len(topology.usable_cpus),
            "oversubscribed": the_plan.oversubscription > 1.0,
            "oversubscription": the_plan.oversubscription,
            "cores_per_instance": cores_per_instance,  # None: the machine shared out evenly
            "plan_warnings": list(the_plan.warnings)})

    def instance(self, k: int, part: Partition, topology: Topology) -> InstancePlan:
        """The worker pins itself to the partition as the machine numbers it."""
        return InstancePlan(k, len(part.cpus), cpus=tuple(part.cpus), nodes=tuple(part.nodes),
                            worker_cpus=tuple(part.cpus), worker_nodes=tuple(part.nodes))


register(Pinned())
