"""Simulated runs in the result schema: scaling sweeps and multistream searches.

Each simulated group is shaped like a measured one (placement, instances, partitions,
throughput_ips, latency_ms, per_instance) and marked ``simulated: true``; the run document
carries the machine, the calibrated instance model with the source of every parameter, and
the simulation settings, so a reader can tell a prediction from a measurement.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from affinity import Topology
from scaler.simulate.layout import Layout, plan_layout
from scaler.simulate.machine import describe
from scaler.simulate.model import InstanceModel

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def latency_summary(lat: Any) -> dict[str, Any]:
    """The keys of ``scaler.stats.latency_ms`` over simulated latencies (ms)."""
    import numpy as np

    if lat.size == 0:
        return {"samples": 0}
    out: dict[str, Any] = {"mean": float(lat.mean())}
    for p, v in zip(PERCENTILES, np.percentile(lat, PERCENTILES)):
        out[f"p{p:g}"] = float(v)
    out.update(min=float(lat.min()), max=float(lat.max()), std=float(lat.std()),
               samples=int(lat.size))
    return out


def simulate_closed(model: InstanceModel, layout: Layout, batch: int = 1,
                    queries: int = 200_000, seed: int = 0, scale: Any = None
                    ) -> dict[str, Any]:
    """Every instance busy back to back (the scaling scenario): one group record;
    ``scale``: a further factor on each instance's query time (``terms.stack_factors``)."""
    from scaler.simulate import des

    n = layout.instances
    work, extra, vm = model.instance_arrays(layout, batch)
    if scale is not None:
        vm = vm * scale
    warm = max(20 * n, queries // 50)
    done, t0, t1, lat, area = des.run_closed(*layout.arrays(), model.params(), vm, work, extra,
                                             model.shape_array(), warm, queries, seed)
    window_s = (t1 - t0) / 1000.0
    per = [{"index": i, "status": "complete", **_partition(layout, i),
            "queries": int(done[i]), "throughput_ips": float(done[i] * batch / window_s)}
           for i in range(n)]
    record = _group(model, layout, batch, per, done.sum() * batch / window_s, lat)
    record["little"] = {"mean_in_system": area / (t1 - t0),
                        "throughput_per_ms": float(done.sum()) / (t1 - t0),
                        "mean_latency_ms": float(lat.mean())}
    return record


def simulate_open(model: InstanceModel, layout: Layout, batch: int, interval_ms: float,
                  queries: int = 20_000, seed: int = 0) -> dict[str, Any]:
    """Queries of ``batch`` frames arriving every ``interval_ms`` at each instance (its
    streams' frames, batched), with random phases: one group record with ``stable`` false
    when a backlog built up."""
    import numpy as np

    from scaler.simulate import des

    n = layout.instances
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, interval_ms, n)
    per_instance = max(queries // n, 50)
    end = interval_ms * per_instance
    warm = end / 10.0
    work, extra, vm = model.instance_arrays(layout, batch)
    done, lat, area, arrivals, left = des.run_open(
        *layout.arrays(), model.params(), vm, work, extra, model.shape_array(), interval_ms,
        phase, warm, end, seed)
    window_s = (end - warm) / 1000.0
    per = [{"index": i, "status": "complete", **_partition(layout, i),
            "queries": int(done[i]), "throughput_ips": float(done[i] * batch / window_s)}
           for i in range(n)]
    record = _group(model, layout, batch, per, done.sum() * batch / window_s, lat)
    record["stable"] = bool(left <= 2 * n)
    record["little"] = {"mean_in_system": area / (end - warm),
                        "arrival_rate_per_ms": arrivals / (end - warm),
                        "mean_latency_ms": float(lat.mean()) if lat.size else None}
    return record


def _partition(layout: Layout, i: int) -> dict[str, Any]:
    part = layout.partitions[i]
    return {"partition": {"cpus": part["cpus"], "nodes": part["nodes"],
                          "memory_nodes": part["memory_nodes"]},
            "threads": part["threads"], "cores": part["cores"]}


def _group(model: InstanceModel, layout: Layout, batch: int, per: list[dict[str, Any]],
           ips: float, lat: Any) -> dict[str, Any]:
    return {
        "placement": layout.placement, "target": "simulated", "emulated": False,
        "simulated": True, "engine": model.engine, "precision": model.precision,
        "model": model.model, "batch": batch, "instances": layout.instances,
        "cores": layout.n_cores, "cpus": int(layout.cpu_core.size),
        "oversubscribed": layout.oversubscribed, "oversubscription": layout.oversubscription,
        "plan_warnings": list(layout.warnings), "status": "complete", "errors": [],
        **({"cores_per_instance": layout.cores_per_instance}
           if layout.cores_per_instance else {}),
        "per_instance": per, "throughput_ips": float(ips), "queries": int(lat.size),
        "latency_ms": latency_summary(lat), "warnings": [],
    }


def scaling_groups(model: InstanceModel, topo: Topology, placements: tuple[str, ...],
                   instances: tuple[int, ...], smt: bool = False, queries: int = 200_000,
                   seed: int = 0, cores_per_instance: int | None = None,
                   oversubscribe: bool = False, style: str = "tuned",
                   terms: Any = None) -> list[dict[str, Any]]:
    """A simulated scaling sweep: one group per placement and instance count, each laid out
    by the placement's planner with ``cores_per_instance`` (placements that size instances
    for the whole machine ignore it); under a ``style`` other than ``tuned``, as the style
    lays threads out, with its fitted ``terms`` (``scaler.simulate.terms``)."""
    from dataclasses import replace

    from scaler.simulate.spin import windowed
    from scaler.simulate.terms import TUNED, stack_factors, styled_layout

    layouts = {(placement, n): styled_layout(topo, placement, n, style, smt,
                                             cores_per_instance, oversubscribe)
               for placement in placements for n in instances}  # refusals before simulating
    styled = style != TUNED and terms is not None
    if styled:
        model = replace(model, values=terms.values_for(model.values, style))
    groups = []
    for placement in placements:
        for n in instances:
            layout, bound = layouts[(placement, n)]
            scale = stack_factors(layout, bound, model.values) if styled else None
            here = replace(model, values=windowed(model.values, layout)) if styled else model
            g = simulate_closed(here, layout, 1, queries, seed + n, scale)
            name = f"{placement}-{style}" if styled else placement
            g.update(id=len(groups), label=f"{name} x{n} batch 1 (simulated)", series=name,
                     **({"threading": style} if styled else {}))
            groups.append(g)
    return groups


def multistream_groups(model: InstanceModel, topo: Topology, instances: tuple[int, ...],
                       bound_ms: float, stat: str, interval_ms: float, max_batch: int,
                       smt: bool = False, queries: int = 20_000, seed: int = 0,
                       placement: str = "pinned", cores_per_instance: int | None = None
                       ) -> list[dict[str, Any]]:
    """Per layout of ``placement`` (1 and each N whose instances fit the cores, of
    ``cores_per_instance`` cores each when given), the largest batch of frames per query
    whose latency at ``stat`` stays under the bound with queries arriving every
    ``interval_ms``: doubling from 1, then bisecting, as the measured search does."""
    cores = len(topo.usable_cores)
    size = cores_per_instance or 1
    groups: list[dict[str, Any]] = []
    for n in sorted({1, *(k for k in instances if 1 < k and k * size <= cores)}):
        layout = plan_layout(topo, placement, n, smt, cores_per_instance)

        def probe(batch: int, layout: Layout = layout, n: int = n) -> bool:
            g = simulate_open(model, layout, batch, interval_ms, queries, seed + batch)
            g.update(id=len(groups), label=f"{placement} x{n} batch {batch} (simulated)",
                     layout=f"{placement} x{n}", probe=True)
            groups.append(g)
            value = g["latency_ms"].get(stat)
            return g["stable"] and value is not None and value <= bound_ms

        good, bad, batch = 0, None, 1
        while batch <= max_batch:
            if probe(batch):
                good, batch = batch, batch * 2
            else:
                bad = batch
                break
        while bad is not None and bad - good > 1:
            mid = (good + bad) // 2
            if probe(mid):
                good = mid
            else:
                bad = mid
    return groups


def run_document(scenario: str, model: InstanceModel, topo: Topology, machine_source: str,
                 requested: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """A run document in the result schema, marked simulated, with its calibration; every
    group built through the typed run record (``scaler.schema.Group``): a field missing or
    mistyped fails here, where it is written."""
    from scaler import results
    from scaler.schema import Group

    host = results.host_info()
    host["simulated_on"] = host["hostname"]
    host["hostname"] = f"simulated {topo.sysfs_root}"
    host["topology"] = topo.to_dict()
    for package in ("numba", "scipy"):
        host["versions"][package] = _version(package)
    return {
        "scenario": scenario, "status": "complete", "partial_reasons": [],
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": results.command_line(), "requested": requested,
        "effective": {"engine": model.engine, "precision": model.precision,
                      "model": model.model, "rules": {}},
        "host": host, "simulated": True, "emulated": False,
        "machine": {"source": machine_source, **describe(topo)},
        "instance_model": model.to_dict(),
        "groups": [Group.written(g, f"simulated group {k}") for k, g in enumerate(groups)],
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def save(doc: dict[str, Any], out: Path) -> tuple[Path, dict[str, Any]]:
    """Save a simulated run under ``out``; returns its folder and its summary."""
    from scaler import results, summaries

    path = results.new_run_path(results.check_output_dir(out), f"simulated-{doc['scenario']}")
    summary = summaries.summarize({**doc, "schema_version": results.SCHEMA_VERSION}, str(path))
    doc["summary"] = summary
    results.save_run(path, doc, {})
    return path, summary
