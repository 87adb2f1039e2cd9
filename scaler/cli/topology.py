"""``scaler topology``: the machine as the planner sees it, as a table or as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from affinity import Topology, format_cpulist, read_topology
from scaler.cli.common import emit_json, errors_to_exit
from scaler.cli.fleetview import FleetOpt, ReadyTimeout

SYSFS_HELP = (
    "Read this sysfs tree instead of /sys; its online CPUs are taken as usable "
    "(the running process's affinity says nothing about another machine)."
)
SysfsRoot = Annotated[str, typer.Option("--sysfs-root", metavar="DIR", help=SYSFS_HELP)]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")]


def topology(
    sysfs_root: SysfsRoot = "/sys",
    json_output: JsonOutput = False,
    fleet: FleetOpt = None,
    ready_timeout: ReadyTimeout = 300.0,
) -> None:
    """Show packages, NUMA nodes, physical cores, threads per core, usable CPUs and ISA."""
    with errors_to_exit():
        if fleet is not None:
            from scaler.cli.fleetview import show_topologies

            show_topologies(fleet, ready_timeout, json_output)
            return
        topo = read_topology(sysfs_root)
        if json_output:
            emit_json(topo.to_dict())
        else:
            typer.echo("\n".join(format_topology(topo)))


def format_topology(topo: Topology) -> list[str]:
    """The readable summary: a few key lines, then one row per NUMA node."""
    summary = topo.to_dict()
    offline = format_cpulist(topo.offline_cpus) or "none"
    lines = [
        f"sysfs root      {topo.sysfs_root}",
        f"packages        {summary['packages']}",
        f"dies            {summary['dies']}",
        f"physical cores  {summary['cores']} usable",
        f"threads/core    {summary['threads_per_core']}",
        f"usable CPUs     {summary['cpus']}: {summary['usable_cpulist']}",
        f"offline CPUs    {offline}",
        f"ISA features    {' '.join(topo.isa) or 'none found'}",
        "",
    ]
    rows = [
        [
            str(node["id"]),
            format_cpulist(node["cpus"]) or "-",
            format_cpulist(node["usable_cpus"]) or "-",
            str(node["cores"]),
            _gib(node["memory_bytes"]),
            " ".join(map(str, node["distances"])) or "-",
        ]
        for node in summary["nodes"]
    ]
    headers = ["node", "CPUs", "usable", "cores", "memory", "distances"]
    lines += format_table(headers, rows, right=(0, 3, 4))
    lines += [f"note: {note}" for note in topo.notes]
    return lines


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    """Columns padded to their widest cell; the columns numbered in ``right`` (counts and
    sizes) right-aligned, the rest left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size else "-"
