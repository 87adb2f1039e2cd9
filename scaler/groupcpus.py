"""The plan of a group and the CPUs it measures on: one answer for every reader.

The measurement lock (``scaler.lock.run_cpus``: the CPUs a run locks before its first worker
starts), the session (``Session._prepare``: the CPUs its noise meter and speed probe watch)
and the simulator (``scaler.simulate.layout.plan_layout``: where a simulated instance runs)
all ask here, so none of them can plan a group differently from the others: each passes the
same ``smt``, ``cores_per_instance`` and ``oversubscribe`` to the placement's own planner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.placements import GroupPlan, Placement


def plan_group(placement: Placement, topology: Topology, n: int, *, smt: bool = False,
               cores_per_instance: int | None = None,
               oversubscribe: bool = False) -> GroupPlan:
    """N instances as the placement plans them (``Placement.plan``), refused when fixed-size
    instances need more cores than the machine has and ``oversubscribe`` is not given
    (``UsageError``, as ``check_oversubscription`` says)."""
    from scaler.placements import check_oversubscription

    plan = placement.plan(topology, n, smt=smt, cores_per_instance=cores_per_instance)
    check_oversubscription(plan, oversubscribe)
    return plan


def measured_cpus(plan: GroupPlan, topology: Topology) -> tuple[int, ...] | None:
    """The CPUs of this machine a planned group measures on: its partitions, or every usable
    CPU when an instance is unpinned; None when its instances run on other machines."""
    if any(i.host for i in plan.instances):
        return None
    if any(i.cpus is None for i in plan.instances):
        return tuple(topology.usable_cpus)
    return tuple(sorted({c for i in plan.instances for c in i.cpus or ()}))


def group_cpus(placement: Placement, topology: Topology, n: int, *, smt: bool = False,
               cores_per_instance: int | None = None,
               oversubscribe: bool = False) -> tuple[int, ...] | None:
    """The CPUs a group of ``n`` instances of ``placement`` measures on (``measured_cpus`` of
    ``plan_group``)."""
    return measured_cpus(plan_group(placement, topology, n, smt=smt,
                                    cores_per_instance=cores_per_instance,
                                    oversubscribe=oversubscribe), topology)
