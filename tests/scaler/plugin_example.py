"""A plug-in made only of test code: one engine and one placement, registered on import.

Loaded by ``SCALER_PLUGINS=tests.scaler.plugin_example`` (with the checkout on PYTHONPATH),
in the CLI process and, through the inherited environment, in every worker it starts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from scaler.engines.base import EngineSpec
from scaler.engines.registry import EngineType, register
from scaler.errors import UsageError
from scaler.placements import GroupPlan, InstancePlan, Placement
from scaler.placements import register as register_placement

if TYPE_CHECKING:
    from affinity import Topology

QUERY_S = 0.002  # per image


class SleepyEngine:
    """Serves each query by sleeping 2 ms per image: a known service time, no runtime."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.info: dict[str, Any] = {"engine": "sleepy", "precision": spec.precision,
                                     "model": spec.model, "query_s": QUERY_S * spec.batch}

    def make_input(self) -> Any:
        return None

    def infer(self, inputs: Any) -> None:
        time.sleep(QUERY_S * self.spec.batch)

    def close(self) -> None:
        return None


class FirstCpu(Placement):
    """Every instance pinned to the first usable CPU, one thread each."""

    name = "firstcpu"
    summary = "every instance on the first usable CPU"
    marker = "x"

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        cpu = (topology.usable_cpus[0],)
        node = (topology.usable_cores[0].node,)
        instances = tuple(InstancePlan(k, 1, cpu, node, cpu, node) for k in range(n))
        return GroupPlan(self.name, instances, {
            "cores": len(topology.usable_cores), "cpus": len(topology.usable_cpus),
            "oversubscribed": n > 1, "oversubscription": float(n)})


class FailsAtTwo(FirstCpu):
    """Like ``firstcpu``, but planning two instances fails (a refusal in mid-sweep)."""

    name = "failsattwo"
    summary = "refuses to plan 2 instances (test plug-in)"

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        if n == 2:
            raise UsageError("failsattwo: no room for 2 instances")
        return super().plan(topology, n, smt=smt, cores_per_instance=cores_per_instance)


register(EngineType(name="sleepy", summary="sleeps 2 ms per image (test plug-in)",
                    precisions=("fp32",), load=SleepyEngine, accepts=("builtin",),
                    memory_gb=(0.02, 0.0)))
register_placement(FirstCpu())
register_placement(FailsAtTwo())
