"""``scaler plan``: the partitions N instances would get, as a table or as JSON; with
``--placement vm``, also the VM each partition would boot (nothing is booted). Several counts
(``--instances 2,4``, ``1-8``, as a sweep takes them) give one plan each, in order: tables
under a line naming the count, JSON as a list of the one-count documents."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from affinity import Partition, Plan, Topology, format_cpulist, read_topology
from affinity import plan as make_plan
from scaler.cli.common import emit_json, errors_to_exit
from scaler.cli.fleetview import FleetOpt, ReadyTimeout
from scaler.cli.placement_options import placement_settings, with_placement_options
from scaler.cli.topology import JsonOutput, SysfsRoot, format_table

if TYPE_CHECKING:
    from scaler.placements.base import DryRunView, GroupPlan


@with_placement_options
def plan(
    instances: Annotated[
        str, typer.Option("--instances", "-n", metavar="N",
                          help="Number of instances, or several as a sweep takes them "
                          "(2,4 or 1-8): one plan each.")
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
    placement: Annotated[
        str | None,
        typer.Option(
            "--placement",
            help="also show what the placement would start for each partition, without "
            "starting it (vm: the VM each partition would boot: vCPU pinning, -smp, guest NUMA "
            "nodes, QEMU command line); default: the partitions only.",
        ),
    ] = None,
    sysfs_root: SysfsRoot = "/sys",
    json_output: JsonOutput = False,
    fleet: FleetOpt = None,
    ready_timeout: ReadyTimeout = 300.0,
    **placement_options: Any,
) -> None:
    """Plan one partition (CPUs and memory nodes) per instance, by physical core and NUMA node."""
    with errors_to_exit():
        from scaler.errors import UsageError
        from scaler.settings import parse_instances

        counts = parse_instances(instances)
        if fleet is not None:
            from scaler.cli.fleetview import show_plans

            if placement is not None:
                raise UsageError("--placement goes without --fleet (a fleet shows what it "
                                 "would ask for each partition)")
            show_plans(fleet, ready_timeout, counts, cores_per_instance, smt, oversubscribe,
                       json_output)
            return
        topo = read_topology(sysfs_root)
        if placement is not None:
            from scaler import placements
            from scaler.settings import Settings

            settings = Settings(placements=(placement,), smt=smt,
                                placement_options=placement_settings(placement_options))
            chosen = placements.get(placement).configured(settings)
        docs, texts = [], []
        for n in counts:
            result = make_plan(topo, n, cores_per_instance, smt=smt, oversubscribe=oversubscribe)
            view = None
            if placement is not None:
                result = placement_plan(topo, result, chosen.plan(
                    topo, n, smt=smt, cores_per_instance=cores_per_instance))
                view = chosen.dry_run(topo, result, settings)
            docs.append(plan_json(result, view))
            lines = format_plan(topo, result) + (view.lines if view is not None else [])
            texts.append("\n".join(([f"== {n} instance(s)"] if len(counts) > 1 else []) + lines))
        if json_output:
            emit_json(docs[0] if len(counts) == 1 else docs)
        else:
            typer.echo("\n\n".join(texts))


def placement_plan(topo: Topology, result: Plan, group: GroupPlan) -> Plan:
    """The partitions as the placement itself plans them (``result``: the even plan, kept
    when the placement's instances are unpinned: it says so in its dry run)."""
    if any(i.cpus is None for i in group.instances):
        return result
    core_of = {c: core for core in topo.usable_cores for c in core.cpus}
    parts = tuple(Partition(i.index, tuple(i.cpus or ()), tuple(i.nodes or ()),
                            len({core_of.get(c, c) for c in i.cpus or ()}))
                  for i in group.instances)
    return replace(result, partitions=parts,
                   oversubscribed=bool(group.layout.get("oversubscribed")),
                   oversubscription=float(group.layout.get("oversubscription", 1.0)))


def plan_json(result: Plan, view: DryRunView | None) -> dict[str, Any]:
    """The plan; a placement's dry run adds its view of each partition and of the whole."""
    doc = result.to_dict()
    if view is not None:
        for part, extra in zip(doc["partitions"], view.per_partition, strict=True):
            part[view.key] = extra
        doc[view.key] = view.summary
    return doc


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


