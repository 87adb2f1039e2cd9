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


def stacked_factor(stack_cost: float, q: float) -> float:
    """The stacking term of a 2-thread instance among q threads per CPU, by hand:
    1 + stack_cost x H(1) x (1 - 1/q), H(1) = 1 (the terms module's docstring)."""
    return 1.0 + stack_cost * (1.0 - 1.0 / q)


def spin_by_hand(window_ms: float, n: int) -> float:
    """The kernel's spin of N 2-thread instances sharing 2 CPUs (q = N threads per CPU), by
    hand: a wait of (N - 1) base slices of 1.5 ms (0.75 ms x (1 + log2 2)) takes 1/N of it
    in CPU, and a thread spins at most the window of it: min(1, window / ((N-1)/N x 1.5))."""
    return 1.0 if n < 2 else min(1.0, window_ms / ((n - 1) / n * 1.5))


def styled_run(path, model, styles=("tuned", "defaults", "model-zoo"), instances=(1, 2, 3, 4),
               stack_cost=0.3, windows=None, shares=None, machine="1s2c1t", pinned=True):
    """A run of ``styles`` on a 2-core machine whose throughputs are built by hand.

    Tuned groups (shared and, with ``pinned``, pinned) get the model's closed form. Groups of
    the other styles are shared only: each instance reads back spin share ``shares[style]``
    (defaults 0.2, model-zoo 0.1) and its one pool thread's spin CPU over the gap,
    ``windows[style]`` ms (defaults 0.5, model-zoo 30), and under model-zoo its two compute
    threads bound to CPUs 0 and 1, so N instances put q = N threads on each CPU; their
    throughput is the closed form with the kernel's spin = ``spin_by_hand(window, N)`` (0
    below the share floor), divided under model-zoo by ``stacked_factor(stack_cost, N)``."""
    from scaler.simulate.model import closed_form_ips

    shares = {"tuned": 0.0, "defaults": 0.2, "model-zoo": 0.1, **(shares or {})}
    windows = {"tuned": 0.0, "defaults": 0.5, "model-zoo": 30.0, **(windows or {})}
    topo = parse_machine(machine)
    groups = []
    for style in styles:
        for placement in (("shared", "pinned") if style == "tuned" and pinned else ("shared",)):
            for n in instances:
                layout = plan_layout(topo, placement, n)
                g = sweep.simulate_closed(model, layout, 1, 2_000, n)
                g.pop("simulated")
                spin = spin_by_hand(windows[style], n) if shares[style] >= 0.005 else 0.0
                ips = closed_form_ips(layout, {**model.values, "spin": spin})
                if style == "model-zoo":
                    ips /= stacked_factor(stack_cost, n)
                    for inst in g["per_instance"]:
                        inst["thread_readback"] = {"process_cpus": "0-1",
                                                   "bound_cpus": ["0", "1"],
                                                   "per_thread_bound": True,
                                                   "bound_by": "runtime"}
                for inst in g["per_instance"]:
                    inst["spin"] = {"share": shares[style], "gap_s": 0.1, "threads": 2,
                                    "cpu_s": windows[style] / 1000.0}
                g.update(id=len(groups), target="local", threading=style,
                         throughput_ips=ips, label=f"{placement}-{style} x{n}")
                groups.append(g)
    doc = sweep.run_document("scaling", model, topo, f"--machine {machine}", {}, groups)
    doc.update(simulated=False)
    doc.pop("instance_model")
    doc["host"]["hostname"] = "measured-host"
    return results.load_run(results.save_run(path, doc, {}))
