"""Synthetic instance models and fake measured runs made from them.

A fake measured run is what the simulator produces for a known model, relabelled as a
measurement: calibrating on it must give the model back, which is what a round trip means.
"""

from __future__ import annotations

import numpy as np
import pytest

from scaler import results
from scaler.simulate import sweep
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine
from scaler.simulate.model import PARAMETERS, SHAPE_POINTS, InstanceModel

TRUE = {"t1_ms": 40.0, "serial_fraction": 0.45, "memory_contention": 0.15,
        "slice_cost": 0.05, "sync_cost": 0.2}


def make_model(**values: float) -> InstanceModel:
    """A model with the assumed defaults, ``TRUE`` and ``values`` on top."""
    v = {name: default for name, (default, _, _) in PARAMETERS.items() if default is not None}
    v.update(TRUE)
    v.update(values)
    shape = tuple(np.linspace(0.9, 1.1, SHAPE_POINTS))
    return InstanceModel("tf", "fp32", "resnet50", v, dict.fromkeys(v, "assumed"), shape,
                         "test: uniform 0.9-1.1 of the mean")


def fake_measured_run(path, model, machine="1s2c1t", placements=("shared", "pinned"),
                      instances=(1, 2, 3, 4, 5, 6), noise=0.0, seed=0, scenario="scaling",
                      cores_per_instance=None, batches=(1,)):
    """Groups simulated for ``model`` on ``machine``, saved as a measured run folder."""
    topo = parse_machine(machine)
    rng = np.random.default_rng(seed)
    groups = []
    for placement in placements:
        for n in instances:
            for batch in batches:
                layout = plan_layout(topo, placement, n, cores_per_instance=cores_per_instance)
                g = sweep.simulate_closed(model, layout, batch, 20_000, seed + n)
                g.pop("simulated")
                g["throughput_ips"] *= 1.0 + noise * rng.standard_normal()
                g.update(id=len(groups), target="local", label=f"{placement} x{n} b{batch}")
                groups.append(g)
    doc = sweep.run_document(scenario, model, topo, f"--machine {machine}", {}, groups)
    doc.update(simulated=False)
    doc.pop("instance_model")
    doc["host"]["hostname"] = "measured-host"
    return results.load_run(results.save_run(path, doc, {}))


@pytest.fixture(scope="session")
def model():
    return make_model()
