"""``scaler topology --fleet`` and ``scaler plan --fleet``: each machine of a fleet as the
planner sees it, read there (a Slurm job step, an SSH session), and what each would run."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from scaler.cli.common import emit_json

FleetOpt = Annotated[str | None, typer.Option(
    "--fleet", help="read the machines of a fleet instead of this one: ssh:FILE or "
    "slurm[:PARTITION[:NODES]] (see README)")]
ReadyTimeout = Annotated[float, typer.Option(
    "--ready-timeout", help="seconds to wait for the fleet (a Slurm allocation's grant)")]


def show_topologies(fleet: str, ready_timeout: float, json_output: bool) -> None:
    from scaler.cli.topology import format_topology
    from scaler.fleets import read_topologies
    from scaler.settings import check_positive

    check_positive("--ready-timeout", ready_timeout)
    _, choice, topologies = read_topologies(fleet, ready_timeout)
    if json_output:
        emit_json({"fleet": str(choice),
                   "machines": {name: t.to_dict() for name, t in topologies.items()}})
        return
    for name, topo in topologies.items():
        typer.echo(f"== {name} ({choice})")
        typer.echo("\n".join(format_topology(topo)) + "\n")


def show_plans(fleet: str, ready_timeout: float, counts: tuple[int, ...],
               cores_per_instance: int | None, smt: bool, oversubscribe: bool,
               json_output: bool) -> None:
    """Instances dealt to the machines in turn (as a run deals them), each machine's share
    planned on its own topology, with what the fleet would ask for each partition; one such
    plan per instance count (the fleet's topologies read once); several as a JSON list."""
    from scaler.fleets import read_topologies
    from scaler.settings import check_positive

    check_positive("--ready-timeout", ready_timeout)
    provider, choice, topologies = read_topologies(fleet, ready_timeout)
    docs = []
    for instances in counts:
        if len(counts) > 1 and not json_output:
            typer.echo(f"=== {instances} instance(s)")
        docs.append(_fleet_plan(provider, choice, topologies, instances, cores_per_instance,
                                smt, oversubscribe, json_output))
    if json_output:
        emit_json(docs[0] if len(counts) == 1 else docs)


def _fleet_plan(provider: Any, choice: Any, topologies: dict[str, Any], instances: int,
                cores_per_instance: int | None, smt: bool, oversubscribe: bool,
                json_output: bool) -> dict[str, Any]:
    from affinity import plan as make_plan
    from scaler.cli.plan import format_plan, plan_json

    names = list(topologies)
    doc: dict[str, Any] = {"fleet": str(choice), "machines": {}}
    for m, name in enumerate(names):
        share = len(range(m, instances, len(names)))
        if share == 0:
            continue
        topo = topologies[name]
        result = make_plan(topo, share, cores_per_instance, smt=smt, oversubscribe=oversubscribe)
        options = [provider.step_options(p.cpus, p.nodes) for p in result.partitions]
        entry = plan_json(result, None)
        for part, opts in zip(entry["partitions"], options, strict=True):
            part["step_options"] = opts
        doc["machines"][name] = entry
        if not json_output:
            typer.echo(f"== {name} ({choice}): instances "
                       f"{', '.join(map(str, range(m, instances, len(names))))}")
            lines = format_plan(topo, result)
            lines += [f"  instance {k}: {' '.join(o)}" for k, o in enumerate(options) if o]
            typer.echo("\n".join(lines) + "\n")
    return doc
