"""CPU topology, VM-like partition plans and process binding; standard library only.

Nothing here imports TensorFlow, numpy or asyncio: workers call :func:`bind` before they
import TensorFlow, and the planner runs anywhere.
"""

from affinity.bind import Binding, bind, current_binding, read_mempolicy, thread_env
from affinity.cpulist import format_cpulist, parse_cpulist
from affinity.errors import AffinityError, BindError, CpuListError, PlanError, TopologyError
from affinity.plan import Partition, Plan, plan
from affinity.topology import ISA_FLAGS, Core, Cpu, Node, Topology, read_isa, read_topology

__all__ = [
    "ISA_FLAGS",
    "AffinityError",
    "BindError",
    "Binding",
    "Core",
    "Cpu",
    "CpuListError",
    "Node",
    "Partition",
    "Plan",
    "PlanError",
    "Topology",
    "TopologyError",
    "bind",
    "current_binding",
    "format_cpulist",
    "parse_cpulist",
    "plan",
    "read_isa",
    "read_mempolicy",
    "read_topology",
    "thread_env",
]
