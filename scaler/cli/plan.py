"""``scaler plan``: the partitions N instances would get, as a table or as JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from affinity import Plan, Topology, format_cpulist, read_topology
from affinity import plan as make_plan
from scaler.cli.common import emit_json, errors_to_exit
from scaler.cli.topology import JsonOutput, SysfsRoot, format_table


def plan(
    instances: Annotated[
        int, typer.Option("--instances", "-n", metavar="N", help="Number of instances.")
    ],
    cores_per_instance: Annotated[
        int | None,
        typer.Option(
            "--cores-per-instance",
            "-k",
            metavar="K",
            help="Physical cores per instance (default: all usable cores shared out evenly; "
            "leftover cores stay idle).",
        ),
    ] = None,
    smt: Annotated[
        bool, typer.Option("--smt", help="Give each partition all SMT siblings of its cores.")
    ] = False,
    oversubscribe: Annotated[
        bool,
        typer.Option("--oversubscribe", help="Allow more demand than cores: share round-robin."),
    ] = False,
    sysfs_root: SysfsRoot = "/sys",
    json_output: JsonOutput = False,
) -> None:
    """Plan one partition (CPUs and memory nodes) per instance, by physical core and NUMA node."""
    with errors_to_exit():
        topo = read_topology(sysfs_root)
        result = make_plan(
            topo, instances, cores_per_instance, smt=smt, oversubscribe=oversubscribe
        )
        if json_output:
            emit_json(result.to_dict())
        else:
            typer.echo("\n".join(format_plan(topo, result)))


def format_plan(topo: Topology, result: Plan) -> list[str]:
    """A heading, one row per partition, then the warnings."""
    threads = "all SMT siblings of each core" if result.smt else "one thread per core"
    lines = [
        f"{len(result.partitions)} instance(s) on {result.usable_cores} usable physical cores "
        f"in {len(topo.cpu_nodes)} NUMA node(s) of {topo.sysfs_root}, {threads}",
        "",
    ]
    rows = [
        [
            str(p.index),
            str(p.cores),
            str(len(p.cpus)),
            format_cpulist(p.cpus),
            format_cpulist(p.nodes),
        ]
        for p in result.partitions
    ]
    lines += format_table(["instance", "cores", "CPUs", "cpulist", "nodes"], rows, right=(0, 1, 2))
    if result.warnings:
        lines += ["", "warnings:", *(f"  - {w}" for w in result.warnings)]
    return lines
