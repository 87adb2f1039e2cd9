"""The ``--hosts`` fleet: any placement run on the machines (or existing VMs) of a hosts file.

Instances are dealt to the hosts in turn; each host's share is planned on that host's own
topology by the placement asked for (so ``pinned`` partitions are in the host's CPU numbers),
and its workers start over SSH. An unpinned instance is confined to the CPUs the hosts file
allows on its host. Each host's share of a group is checked against that host's memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scaler.placements.base import GroupPlan, InstancePlan, Placement

if TYPE_CHECKING:
    from affinity import Topology
    from scaler.hosts import Host
    from scaler.settings import Settings
    from scaler.targets import Target


class Fleet:
    """The probed machines of a hosts file."""

    def __init__(self, hosts: tuple[Host, ...], topologies: dict[str, Topology],
                 parallel: int = 32) -> None:
        self.hosts = hosts
        self.topologies = topologies
        self.parallel = parallel  # ssh processes connecting at once (--ssh-parallel)
        self._target: Target | None = None

    @classmethod
    async def open(cls, hosts_toml: str, parallel: int = 32) -> Fleet:
        """Probe every host of the hosts file (reachable, key accepted, scaler installed) and
        read its topology before any worker starts; HostError names the first that fails
        (``parallel``: ssh processes at once, ``--ssh-parallel``)."""
        from scaler.hosts import load_hosts
        from scaler.targets.ssh import probe_all

        hosts = load_hosts(hosts_toml)
        return cls(hosts, await probe_all(hosts, parallel=parallel), parallel)

    def wrap(self, placement: Placement) -> FleetPlacement:
        return FleetPlacement(placement, self)

    def host_of(self, k: int) -> Host:
        return self.hosts[k % len(self.hosts)]  # instances are dealt to hosts in turn

    def target(self) -> Target:
        """One target for the run: each request goes to its instance's host."""
        from scaler.targets.ssh import FleetTarget, SshTarget

        if self._target is None:
            import asyncio

            limit = asyncio.Semaphore(self.parallel)
            self._target = FleetTarget({h.name: SshTarget(h, self.topologies.get(h.name),
                                                          limit=limit) for h in self.hosts})
        return self._target

    def describe(self) -> dict[str, Any]:
        """What the run document keeps about each host."""
        return {h.name: {**h.to_dict(), "topology": self.topologies[h.name].to_dict()}
                for h in self.hosts if h.name in self.topologies}


class FleetPlacement(Placement):
    """``placement`` on the fleet's hosts: same name, plans per host, workers over SSH."""

    def __init__(self, inner: Placement, fleet: Fleet) -> None:
        self.inner, self.fleet = inner, fleet
        self.name = inner.name  # type: ignore[misc]
        self.summary = inner.summary  # type: ignore[misc]
        self.marker = inner.marker  # type: ignore[misc]
        self.baseline = inner.baseline  # type: ignore[misc]
        self.virtualized = inner.virtualized  # type: ignore[misc]

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        share: dict[str, list[int]] = {}
        for k in range(n):
            share.setdefault(self.fleet.host_of(k).name, []).append(k)
        instances: dict[int, InstancePlan] = {}
        layout: dict[str, Any] = {"cores": 0, "cpus": 0, "oversubscribed": False,
                                  "oversubscription": 0.0, "plan_warnings": [], "hosts": {}}
        for name, ks in share.items():
            topo = self.fleet.topologies[name]
            usable = tuple(topo.usable_cpus)
            layout["hosts"][name] = {"instances": len(ks), "cores": len(topo.usable_cores),
                                     "cpus": len(usable)}
            layout["cores"] += len(topo.usable_cores)
            layout["cpus"] += len(usable)
            part = self.inner.plan(topo, len(ks), smt=smt, cores_per_instance=cores_per_instance)
            layout["oversubscribed"] |= bool(part.layout.get("oversubscribed"))
            layout["oversubscription"] = max(layout["oversubscription"],
                                             float(part.layout.get("oversubscription", 1.0)))
            layout["plan_warnings"] += [f"{name}: {w}" for w in part.warnings]
            if part.layout.get("cores_per_instance"):
                layout["cores_per_instance"] = part.layout["cores_per_instance"]
            for k, inst in zip(ks, part.instances):
                worker_cpus = inst.worker_cpus if inst.cpus is not None else usable
                instances[k] = InstancePlan(k, inst.threads, inst.cpus, inst.nodes, worker_cpus,
                                            inst.worker_nodes, host=name)
        return GroupPlan(self.name, tuple(instances[k] for k in range(n)), layout)

    def make_target(self, settings: Settings, topology: Topology) -> Target:
        return self.fleet.target()

    def check_memory(self, target: Target, plan: GroupPlan, settings: Settings,
                     worker_gb: float) -> None:
        """Each host's share of the group against that host's memory (its NUMA nodes' total,
        as its probe read it: what is free there is not known here)."""
        from scaler.footprint import check

        share: dict[str, int] = {}
        for inst in plan.instances:
            if inst.host is not None:
                share[inst.host] = share.get(inst.host, 0) + 1
        for name, n in share.items():
            topo = self.fleet.topologies.get(name)
            total = sum(node.memory_bytes for node in topo.nodes) if topo else 0
            check(n, worker_gb, getattr(worker_gb, "source", "estimated"), settings.engine,
                  settings.model, settings.batch, total or None, where=f"host {name}")
