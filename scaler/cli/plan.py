"""``scaler plan``: the partitions N instances would get, as a table or as JSON; with
``--placement vm``, also the VM each partition would boot (nothing is booted)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

from affinity import Plan, Topology, format_cpulist, read_topology
from affinity import plan as make_plan
from scaler.cli.common import emit_json, errors_to_exit
from scaler.cli.topology import JsonOutput, SysfsRoot, format_table
from scaler.errors import UsageError

if TYPE_CHECKING:
    from scaler.targets.dryrun import DryRun


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
    placement: Annotated[
        str | None,
        typer.Option(
            "--placement",
            help="pinned (the partitions, the default) or vm (also the VM each partition "
            "would boot: vCPU pinning, -smp, guest NUMA nodes, QEMU command line).",
        ),
    ] = None,
    vm_memory: Annotated[
        str | None,
        typer.Option("--vm-memory", help="Memory of each VM, e.g. 2G (vm placement)."),
    ] = None,
    vm_kernel: Annotated[
        str | None,
        typer.Option("--vm-kernel", help="Kernel the VMs would boot (vm placement)."),
    ] = None,
    accel: Annotated[
        str, typer.Option("--accel", help="auto, kvm or tcg (vm placement).")
    ] = "auto",
    vm_hugepages: Annotated[
        bool, typer.Option("--vm-hugepages", help="Huge-page guest memory (vm placement).")
    ] = False,
    sysfs_root: SysfsRoot = "/sys",
    json_output: JsonOutput = False,
) -> None:
    """Plan one partition (CPUs and memory nodes) per instance, by physical core and NUMA node."""
    with errors_to_exit():
        if placement not in (None, "pinned", "vm"):
            raise UsageError(f"--placement {placement!r}: plan shows pinned or vm (shared "
                             "instances have no partitions)")
        topo = read_topology(sysfs_root)
        result = make_plan(
            topo, instances, cores_per_instance, smt=smt, oversubscribe=oversubscribe
        )
        vms = None
        if placement == "vm":
            from scaler.settings import parse_memory_mb
            from scaler.targets.dryrun import dry_run

            memory_mb = parse_memory_mb(vm_memory) if vm_memory else None
            vms = dry_run(topo, result, accel, memory_mb, vm_kernel, vm_hugepages)
        if json_output:
            emit_json(plan_json(result, vms))
        else:
            lines = format_plan(topo, result)
            if vms is not None:
                lines += format_vms(vms)
            typer.echo("\n".join(lines))


def plan_json(result: Plan, vms: DryRun | None) -> dict[str, Any]:
    doc = result.to_dict()
    if vms is not None:
        for part, vm in zip(doc["partitions"], vms.plans, strict=True):
            part["vm"] = vm.to_dict(vms.boot)
        doc["vm"] = {"accel": vms.accel.name, "accel_reason": vms.accel.reason,
                     "notes": list(vms.notes)}
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


def format_vms(vms: DryRun) -> list[str]:
    """Per partition: its VM's shape, vCPU pinning, guest NUMA nodes, tuning, command line."""
    lines = ["", f"VMs ({vms.accel.name}: {vms.accel.reason}); nothing was booted:"]
    for vm in vms.plans:
        tuning = vm.tuning()
        chosen = [name for name in ("host_cache_info", "kvm_hint_dedicated", "cpu_pm",
                                    "prealloc", "hugepages", "x2apic_intremap") if tuning[name]]
        lines += [
            "",
            f"vm {vm.index}: {vm.vcpus} vCPUs as sockets={vm.sockets} cores={vm.cores} "
            f"threads={vm.threads}, {vm.memory_mb} MiB, max APIC id {vm.max_apic_id}",
            "  vCPU->CPU  " + " ".join(f"{k}:{cpu}" for k, cpu in enumerate(vm.cpus)),
        ]
        for node in vm.nodes:
            lines.append(f"  guest node {node.id} = host node {node.host_node}: vCPUs "
                         f"{format_cpulist(node.vcpus)}, {node.memory_mb} MiB")
        lines.append(f"  tuning     {', '.join(chosen) or 'none'}; mem-merge off")
        lines += [f"  note: {note}" for note in vm.notes]
        lines.append("  " + shlex.join(vm.argv(vms.boot)))
    lines += [f"note: {note}" for note in vms.notes]
    return lines
