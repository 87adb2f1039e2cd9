"""A worker's start: pin itself and export its thread settings before the engine's runtime
loads, load the engine, warm up, and the ``ready`` report of what it reads back (binding,
threads, ISA, memory nodes, clock, footprint)."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from scaler.hostfacts import boot_id
from scaler.worker import protocol
from scaler.worker.spec import WorkerSpec

SLURM_KEYS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURMD_NODENAME")


def load(spec: WorkerSpec) -> tuple[Any, Any, dict[str, Any]]:
    """Pin, load the engine, warm up; returns the engine, its inputs and the ready report."""
    from affinity import bind, read_isa
    from scaler.engines import EngineSpec, isa_caps, load_engine
    from scaler.engines.kernels import amx_permission

    t_begin = time.monotonic()
    from scaler.worker import threads

    binding = bind(spec.cpus, spec.nodes, threads=spec.threads,
                   inter_op_threads=spec.inter_op_threads, threading=spec.threading)
    os.environ.update(isa_caps.env(spec.isa))  # before the runtime loads: read once
    if spec.cpus is not None:
        threads.pin_every_thread(binding.cpus)
    engine = load_engine(EngineSpec(
        engine=spec.engine, precision=spec.precision, model=spec.model, batch=spec.batch,
        threads=binding.threads, inter_op_threads=binding.inter_op_threads,
        cache_dir=spec.cache_dir, seed=spec.instance, threading=spec.threading,
        isa=spec.isa, service_s=spec.service_s))
    inputs = engine.make_input()
    before = threads.snapshot()  # the compute threads are those that work in the warm-up
    t_loaded = time.monotonic()
    warm_lat = []
    while True:
        t0 = time.monotonic()
        engine.infer(inputs)
        warm_lat.append(time.monotonic() - t0)
        if (len(warm_lat) >= spec.warmup_queries
                and time.monotonic() - t_loaded >= spec.warmup_s):
            break
    spin = threads.idle_spin(binding.threads)  # right after the last warm-up query
    readback = threads.read_back(binding.cpus, before)
    if spec.threading == "model-zoo" and not readback["per_thread_bound"]:
        readback = threads.bind_compact(readback, binding.cpus)
    from affinity.numamaps import read_numa_maps

    report = {
        "instance": spec.instance,
        "pid": os.getpid(),
        "hostname": platform.node(),
        "binding": binding.to_dict(),
        "memory_nodes": read_numa_maps(),  # where its memory is after warm-up, per node
        "threads": binding.threads,
        "threading": spec.threading,
        "thread_readback": readback,
        "spin": spin,
        "engine": dict(engine.info),
        "isa": list(read_isa()),
        "amx_permission": amx_permission(),  # after warm-up: did the runtime enable AMX?
        "python": platform.python_version(),
        "load_s": round(t_loaded - t_begin, 3),
        "warmup_queries": len(warm_lat),
        "warmup_last_query_s": round(warm_lat[-1], 6),
        "clock": "CLOCK_MONOTONIC",
        "boot_id": boot_id(),
        "protocol": protocol.PROTOCOL_VERSION,
        "rss_peak_bytes": _rss_peak(),  # the model's footprint, checked before later runs
    }
    slurm = {k: v for k, v in os.environ.items() if k in SLURM_KEYS or k.startswith(
        ("SLURM_CPU_BIND", "SLURM_MEM_BIND"))}
    if slurm:  # a Slurm job step: its ids and the binding Slurm says it applied
        report["slurm"] = slurm
    return engine, inputs, report


def _rss_peak() -> int | None:
    from scaler.footprint import rss_peak_bytes

    return rss_peak_bytes()
