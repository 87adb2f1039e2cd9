"""The README's "Adding an engine, a placement or a scenario" says what the code does (issue 24):
the lists of built-ins it names are the modules that register themselves, ``plan``'s signature
is the one callers use, its table of ``GroupPlan.layout`` keys is what the placements write,
and a placement and an engine written as it says plan, lock, simulate and register as it says
(in a child process: the registries are global)."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys

from tests.scaler.helpers import ROOT

SECTION = "## Adding an engine, a placement or a scenario"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    return text[start:text.index("\n## ", start + len(SECTION))]


def named(dotted: str) -> object:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def self_registering(package: str) -> set[str]:
    """Modules of ``scaler/<package>/`` that call ``register(...)`` at module level."""
    out = set()
    for path in sorted((ROOT / "scaler" / package).glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id == "register"):
                out.add(path.stem)
    return out


def test_the_lists_of_built_ins_it_names_are_the_modules_that_register_themselves():
    text = section()
    lists = {"scaler.engines.registry.BUILTIN", "scaler.placements.base.BUILTIN",
             "scaler.fleets.BUILTIN", "scaler.scenarios.SCENARIOS"}
    assert all(f"`{name}`" in text for name in lists), "the README no longer names them all"
    assert set(named("scaler.engines.registry.BUILTIN")) == self_registering("engines")
    assert set(named("scaler.placements.base.BUILTIN")) == self_registering("placements")
    fleets = named("scaler.fleets.BUILTIN")
    assert {module.rpartition(".")[2] for module in fleets.values()} == self_registering(
        "fleets")
    scenarios = named("scaler.scenarios.SCENARIOS")
    runs = {path.stem for path in (ROOT / "scaler" / "scenarios").glob("*.py")
            if "\nasync def run(" in path.read_text()}
    assert set(scenarios) == runs
    assert all(fn.__module__ == f"scaler.scenarios.{name}" for name, fn in scenarios.items())


def test_plan_has_the_signature_it_gives():
    from scaler import placements

    given = re.search(r"`plan\((topology, n, [^`]*)\)`", section())
    assert given, "the README no longer gives plan's signature"
    for placement in [placements.Placement(), *placements.placements().values()]:
        assert signature(placement.plan) == given.group(1), type(placement)


def signature(fn) -> str:
    """``topology, n, *, smt=False, cores_per_instance=None``: names, defaults, the star."""
    parts: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        parts.append(p.name + ("" if p.default is p.empty else f"={p.default!r}"))
    return ", ".join(parts)


def layout_keys() -> set[str]:
    keys = set()
    for row in re.findall(r"^\s*\| (`[^|]*) \|", section(), re.M):
        keys.update(re.findall(r"`(\w+)`", row))
    return keys


def test_its_layout_keys_are_what_the_placements_write():
    from scaler import placements
    from scaler.simulate.machine import parse_machine

    keys = layout_keys()
    assert keys == {"cores", "cpus", "oversubscribed", "oversubscription", "cores_per_instance",
                    "plan_warnings"}
    topo = parse_machine("2s4c2t")
    for name in ("shared", "pinned", "vm"):
        for k in (None, 2):
            written = set(placements.get(name).plan(topo, 3, cores_per_instance=k).layout)
            assert {"cores", "cpus", "oversubscribed", "oversubscription"} <= written <= keys


FOLLOW = r"""
import json
from scaler import lock, placements
from scaler.engines.registry import EngineType, engine_for_suffix, engines, engines_accepting
from scaler.engines.registry import register
from scaler.errors import UsageError
from scaler.groupcpus import group_cpus, plan_group
from scaler.placements import GroupPlan, InstancePlan, Placement
from scaler.settings import Settings
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import parse_machine


class FirstCores(Placement):
    # the README's placement: instance k on core k (K cores each), wrapping round the machine
    name = "firstcores"
    summary = "instance k on the k-th cores"

    def plan(self, topology, n, *, smt=False, cores_per_instance=None):
        k = cores_per_instance or 1
        cores = topology.usable_cores
        instances = []
        for i in range(n):
            mine = [cores[(i * k + j) % len(cores)] for j in range(k)]
            cpus = tuple(c for core in mine for c in (core.cpus if smt else core.cpus[:1]))
            nodes = tuple(sorted({core.node for core in mine}))
            instances.append(InstancePlan(i, len(cpus), cpus, nodes, cpus, nodes))
        over = n * k > len(cores)
        return GroupPlan(self.name, tuple(instances), {
            "cores": len(cores), "cpus": len(topology.usable_cpus), "oversubscribed": over,
            "oversubscription": max(1.0, n * k / len(cores)),
            "cores_per_instance": cores_per_instance,
            "plan_warnings": ["instances share cores"] if over else []})


placements.register(FirstCores())
topo = parse_machine("1s4c2t")  # CPUs 0-3, siblings 4-7
out = {"cpus": group_cpus(placements.get("firstcores"), topo, 2, cores_per_instance=1),
       "smt": group_cpus(placements.get("firstcores"), topo, 1, smt=True,
                         cores_per_instance=2),
       "locked": sorted(lock.run_cpus(Settings(placements=("firstcores",), instances=(1, 2),
                                               cores_per_instance=1), topo)),
       "simulated": [p["cpus"] for p in plan_layout(topo, "firstcores", 2).partitions]}
try:
    plan_group(placements.get("firstcores"), topo, 3, cores_per_instance=2)
except UsageError as exc:
    out["refused"] = str(exc)
over = plan_layout(topo, "firstcores", 3, cores_per_instance=2, oversubscribe=True)
out["warnings"] = list(over.warnings)

engines()  # the built-ins first, as a plug-in is loaded after them
try:
    register(EngineType(name="readme", summary="s", precisions=("fp32",), load=None,
                        native_suffixes=(".onnx",)))
except ValueError as exc:
    out["suffix"] = str(exc)
register(EngineType(name="readme", summary="s", precisions=("fp32",), load=None,
                    accepts=("builtin", "onnx")))
out["onnx"] = [engine_for_suffix("m.onnx").name, "readme" in engines_accepting("onnx")]
print(json.dumps(out))
"""


def test_a_placement_and_an_engine_written_as_it_says_work_as_it_says():
    env = {k: v for k, v in os.environ.items() if k != "SCALER_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", FOLLOW], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["cpus"] == [0, 1]  # the lock and the session measure the plan's CPUs, only
    assert out["smt"] == [0, 1, 4, 5]
    assert out["locked"] == [0, 1]  # with --cores-per-instance, as the session plans it
    assert out["simulated"] == [[0], [1]]  # the simulator lays it out the same way
    assert "--oversubscribe" in out["refused"]  # fixed-size and oversubscribed: refused
    assert out["warnings"] == ["instances share cores"]
    assert "already run on 'onnxruntime'" in out["suffix"]  # one engine per suffix
    assert out["onnx"] == ["onnxruntime", True]  # another's format: accepts, when asked
