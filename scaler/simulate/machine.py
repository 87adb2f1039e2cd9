"""Machines to simulate, as ``affinity.Topology`` objects so the real planner lays them out.

Three sources: a compact description (``2s28c2t`` = 2 sockets, 28 cores each, 2 hardware
threads per core, one NUMA node per socket; ``2s32c2t4n`` = 4 nodes per socket), the JSON of
``scaler topology --json`` (also what every run records under ``host.topology``), or a sysfs
tree. Compact machines are numbered like a Xeon (siblings n and n + cores) although nothing
downstream depends on CPU numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from affinity import Core, Cpu, Node, Topology, read_topology
from scaler.errors import UsageError

_COMPACT = re.compile(r"(\d+)s(\d+)c(\d+)t(?:(\d+)n)?")


def parse_machine(text: str) -> Topology:
    """A machine from a compact description such as ``2s28c2t`` or ``2s32c2t4n``."""
    match = _COMPACT.fullmatch(text.strip().lower())
    if not match:
        raise UsageError(f"bad --machine {text!r}: expected SOCKETSsCORESc THREADSt[NODESn], "
                         "e.g. 2s28c2t or 2s32c2t4n (nodes per socket)")
    sockets, cores, threads = (int(g) for g in match.groups()[:3])
    nodes_per = int(match.group(4) or 1)
    if min(sockets, cores, threads, nodes_per) < 1:
        raise UsageError(f"bad --machine {text!r}: every count must be at least 1")
    if cores % nodes_per:
        raise UsageError(f"bad --machine {text!r}: {cores} cores per socket do not split "
                         f"evenly into {nodes_per} nodes")
    if sockets * cores * threads > 4096:
        raise UsageError(f"bad --machine {text!r}: more than 4096 CPUs")
    total = sockets * cores
    per_node = cores // nodes_per
    cpus, core_list = [], []
    node_cpus: dict[int, list[int]] = {}
    for k in range(total):
        package, core_id = divmod(k, cores)
        node = package * nodes_per + core_id // per_node
        ids = tuple(k + t * total for t in range(threads))
        core_list.append(Core(package, 0, core_id, node, ids))
        cpus += [Cpu(c, True, package, 0, core_id, node) for c in ids]
        node_cpus.setdefault(node, []).extend(ids)
    n_nodes = sockets * nodes_per
    nodes = tuple(
        Node(n, tuple(sorted(node_cpus[n])), 0, True,
             tuple(10 if m == n else (12 if m // nodes_per == n // nodes_per else 21)
                   for m in range(n_nodes)))
        for n in range(n_nodes))
    return Topology(cpus=tuple(sorted(cpus, key=lambda c: c.id)), cores=tuple(core_list),
                    nodes=nodes, packages=tuple(range(sockets)),
                    usable_cpus=tuple(range(total * threads)), isa=(),
                    sysfs_root=f"machine:{text.strip().lower()}")


def topology_from_dict(d: dict[str, Any], source: str = "json") -> Topology:
    """Rebuild a Topology from ``Topology.to_dict()`` (``scaler topology --json``)."""
    try:
        cores = tuple(Core(c["package"], c["die"], c["core_id"], c["node"], tuple(c["cpus"]),
                           c.get("kind", "")) for c in d["physical_cores"])
        cpus = tuple(sorted((Cpu(cpu, True, c.package, c.die, c.core_id, c.node)
                             for c in cores for cpu in c.cpus), key=lambda c: c.id))
        nodes = tuple(Node(n["id"], tuple(n["cpus"]), int(n.get("memory_bytes", 0)),
                           bool(n.get("has_cpu", True)), tuple(n.get("distances", ())))
                      for n in d["nodes"])
        return Topology(cpus=cpus, cores=cores, nodes=nodes,
                        packages=tuple(sorted({c.package for c in cores})),
                        usable_cpus=tuple(d["usable_cpus"]), isa=tuple(d.get("isa", ())),
                        sysfs_root=d.get("sysfs_root", source))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{source}: not the JSON of `scaler topology --json` "
                         f"({type(exc).__name__}: {exc})") from None


def load_machine(machine: str | None, topology_file: str | None, sysfs_root: str | None,
                 default: dict[str, Any] | None, default_name: str = "") -> tuple[Topology, str]:
    """The machine to simulate and a one-line description of where it came from.

    At most one source may be given; without any, ``default`` (the calibration host's
    recorded topology, named ``default_name``) is used.
    """
    given = [name for name, v in (("--machine", machine), ("--topology", topology_file),
                                  ("--sysfs-root", sysfs_root)) if v]
    if len(given) > 1:
        raise UsageError(f"give one machine, not {' and '.join(given)}")
    if machine:
        return parse_machine(machine), f"--machine {machine}"
    if topology_file:
        path = Path(topology_file)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: not JSON ({exc})") from None
        if isinstance(doc, dict) and "topology" in doc.get("host", {}):
            doc = doc["host"]["topology"]  # a run.json: its host's topology
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: not the JSON of `scaler topology --json`")
        return topology_from_dict(doc, str(path)), f"--topology {path}"
    if sysfs_root:
        return read_topology(sysfs_root), f"--sysfs-root {sysfs_root}"
    if default is None:
        raise UsageError("no machine: give --machine, --topology or --sysfs-root")
    topo = topology_from_dict(default, "the calibration run's host")
    label = f"{default_name} (calibration host)" if default_name else "calibration host"
    return replace(topo, sysfs_root=label), "the calibration host"


def describe(topo: Topology) -> dict[str, Any]:
    """The figures of a machine the model uses, for results and messages."""
    return {"packages": len(topo.packages), "nodes": len(topo.cpu_nodes),
            "cores": len(topo.usable_cores), "cpus": len(topo.usable_cpus),
            "threads_per_core": topo.threads_per_core}
