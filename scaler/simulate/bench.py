"""Speed of the simulator, for ``make bench``: simulated queries per second on one core and
the wall time of a 1..64-instance sweep of a 2-socket machine.

The model's values are fixed, plausible figures (ResNet50-like on one core); the kernel's
speed does not depend on them, only on the number of instances.
"""

from __future__ import annotations

import json
import time
from typing import Any

BENCH_VALUES = {"t1_ms": 43.0, "serial_fraction": 0.4, "memory_contention": 0.1,
                "slice_cost": 0.05, "sync_cost": 0.2}


def _model() -> Any:
    import numpy as np

    from scaler.simulate.model import PARAMETERS, SHAPE_POINTS, InstanceModel

    values = {k: d for k, (d, _, _) in PARAMETERS.items() if d is not None} | BENCH_VALUES
    shape = tuple(np.linspace(0.8, 1.2, SHAPE_POINTS))
    return InstanceModel("bench", "fp32", "bench", values, dict.fromkeys(values, "given"),
                         shape, "bench: uniform 0.8-1.2 of the mean")


def bench(queries: int = 5_000_000, repeats: int = 3) -> dict[str, Any]:
    """Best-of-``repeats`` kernel throughput at several instance counts, and a full sweep."""
    from importlib import metadata

    from scaler.simulate import des
    from scaler.simulate.layout import plan_layout
    from scaler.simulate.machine import parse_machine
    from scaler.simulate.sweep import scaling_groups

    model = _model()
    topo = parse_machine("2s28c2t")
    start = time.perf_counter()
    layout = plan_layout(topo, "pinned", 2)
    work, extra, vm = model.instance_arrays(layout, 1)
    des.run_closed(*layout.arrays(), model.params(), vm, work, extra, model.shape_array(),
                   10, 100, 0)
    first_call_s = time.perf_counter() - start
    rates = {}
    for n in (1, 8, 56, 64):
        layout = plan_layout(topo, "pinned", n)
        work, extra, vm = model.instance_arrays(layout, 1)
        best = float("inf")
        for k in range(repeats):
            t = time.perf_counter()
            des.run_closed(*layout.arrays(), model.params(), vm, work, extra,
                           model.shape_array(), 1000, queries, k)
            best = min(best, time.perf_counter() - t)
        rates[str(n)] = queries / best
    start = time.perf_counter()
    groups = scaling_groups(model, topo, ("shared", "pinned"), tuple(range(1, 65)))
    sweep_s = time.perf_counter() - start
    return {
        "des_queries_per_s": min(rates.values()),
        "des_queries_per_s_by_instances": rates,
        "first_call_s": first_call_s,
        "sweep_2s28c2t_1_64_shared_pinned_s": sweep_s,
        "sweep_points": len(groups),
        "sweep_queries_per_point": groups[0]["queries"],
        "numba": metadata.version("numba"),
    }


if __name__ == "__main__":
    print(json.dumps(bench(), indent=2))
