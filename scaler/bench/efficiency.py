"""Achieved GFLOP/s per precision, with the tool itself, against the measured fp32 peak.

Each precision is measured in a few layouts through the real scenario machinery
(``Session.group``: coordinator, local target, pinned workers, run folder with raw samples):
one instance over both cores at a large batch, one pinned instance per core at the same
batch, and one pinned instance per core at batch 1 (the N=2 point of the scaling curve).
The best layout's images/s times 8.2 GFLOP (ResNet50 224x224, about 4.1 GMAC) is its
GFLOP/s; int8 "GFLOP/s" are integer ops counted the same way, so int8 can exceed the fp32
peak. Each best layout is also set against its own precision's measured peak (``peak``).
Other models report images/s only: their FLOP count is not known here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.bench.machine import CpuMeter

GFLOP_PER_IMAGE = {"resnet50": 8.2}


@dataclass(frozen=True)
class Layout:
    label: str
    instances: int
    batch: int


def layouts(batch: int, cores: int) -> list[Layout]:
    """1 instance over all cores at ``batch``; 1 per core at ``batch``; 1 per core at 1."""
    out = [Layout(f"1x{cores} cores, batch {batch}", 1, batch)]
    if cores > 1:
        out += [Layout(f"{cores}x1 core, batch {batch}", cores, batch),
                Layout(f"{cores}x1 core, batch 1", cores, 1)]
    return out


def measure_precision(precision: str, engine: str, model: str, batch: int, out: Path,
                      min_duration_s: float, min_queries: int, warmup_s: float,
                      cache_dir: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Every layout of one precision in one run folder; the best by images/s."""
    import uvloop

    from scaler import scenarios
    from scaler.progress import Reporter
    from scaler.session import Session
    from scaler.settings import Settings

    settings = Settings(engine=engine, precision=precision, model=model, batch=batch,
                        min_duration_s=min_duration_s, min_queries=min_queries,
                        warmup_s=warmup_s, cache_dir=cache_dir)
    spec, topology = scenarios.prepare(settings)
    out.mkdir(parents=True, exist_ok=True)
    session = Session("throughput", settings, spec, out, topology,
                                Reporter(quiet=quiet))
    cores = len(topology.usable_cores)
    rows = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            for layout in layouts(batch, cores):
                with CpuMeter() as meter:
                    record = runner.run(session.group("pinned", layout.instances,
                                                      layout.batch, label=layout.label))
                    # the session keeps finished workers warm for a later group; no layout
                    # here reuses one, and they must be gone (and waited for) for the meter
                    # to count their CPU time as the bench's own
                    runner.run(session.pool.close())
                rows.append(_row(layout, record, model, meter.result))
        finally:
            runner.run(session.pool.close())
    session.save(finished=True)
    done = [r for r in rows if r["status"] == "complete"]
    best = max(done, key=lambda r: r["throughput_ips"]) if done else None
    return {"precision": precision, "engine": spec.engine, "model": model,
            "run": str(session.path), "layouts": rows, "best": best,
            "rules": {"min_duration_s": min_duration_s, "min_queries": min_queries,
                      "warmup_s": warmup_s}}


def _row(layout: Layout, record: dict[str, Any], model: str,
         machine: dict[str, Any]) -> dict[str, Any]:
    ips = record.get("throughput_ips")
    per_image = GFLOP_PER_IMAGE.get(model)
    lat = record.get("latency_ms") or {}
    return {
        "label": layout.label, "instances": layout.instances, "batch": layout.batch,
        "status": record["status"], "errors": record.get("errors", []),
        "throughput_ips": ips, "queries": record.get("queries"),
        "gflops": ips * per_image if ips is not None and per_image else None,
        "latency_p50_ms": lat.get("p50"),
        "per_instance_ips": [i.get("throughput_ips") for i in record["per_instance"]],
        "cpus": [(i.get("binding") or {}).get("cpulist") for i in record["per_instance"]],
        "throughput_method": (record.get("throughput") or {}).get("method"),
        # what the kernels ran on, as the first instance read it back
        "kernel_isa": next((dict((i.get("engine") or {}).get("kernel_isa") or {},
                                 amx_permission=i.get("amx_permission"))
                            for i in record["per_instance"] if i.get("engine")), None),
        "machine": machine,
    }


def with_peak(result: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    """Add the best layout's fraction of the fp32 peak of all cores and of its own
    precision's peak (``peak`` is the peak section: ``machine_gflops``, ``precisions``)."""
    gflops = (result.get("best") or {}).get("gflops")
    fp32 = peak.get("machine_gflops")
    own = ((peak.get("precisions") or {}).get(result["precision"]) or {}).get("machine_gops")
    return {**result,
            "fraction_of_fp32_peak": gflops / fp32 if gflops and fp32 else None,
            "fraction_of_own_peak": gflops / own if gflops and own else None}
