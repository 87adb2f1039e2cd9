"""Machine descriptions: compact strings, topology JSON and sysfs trees give the same planner
input."""

from __future__ import annotations

import pytest

from affinity import plan, read_topology
from scaler.errors import UsageError
from scaler.simulate.machine import load_machine, parse_machine, topology_from_dict
from tests.affinity.fixtures.make_sysfs import machines, write


def test_compact_two_socket_xeon():
    topo = parse_machine("2s28c2t")
    assert len(topo.usable_cores) == 56 and len(topo.usable_cpus) == 112
    assert topo.threads_per_core == 2 and len(topo.cpu_nodes) == 2
    assert topo.cores[0].cpus == (0, 56)  # siblings n and n + cores, as on a Xeon
    halves = plan(topo, 2)
    assert [p.nodes for p in halves.partitions] == [(0,), (1,)]
    assert len(parse_machine("2s32c2t4n").cpu_nodes) == 8


@pytest.mark.parametrize("text", ["2s28c", "s28c2t", "2s0c2t", "2s30c2t4n", "lots"])
def test_bad_compact_descriptions(text):
    with pytest.raises(UsageError, match="--machine"):
        parse_machine(text)


def test_topology_json_round_trip_plans_like_sysfs(tmp_path):
    root = write(machines()["xeon-2s-ht"], str(tmp_path))
    topo = read_topology(str(root))
    again = topology_from_dict(topo.to_dict())
    assert again.to_dict()["physical_cores"] == topo.to_dict()["physical_cores"]
    for n in (1, 3, 7, 20):
        assert plan(again, n).to_dict()["partitions"] == plan(topo, n).to_dict()["partitions"]


def test_load_machine_sources(tmp_path):
    default = parse_machine("1s4c1t").to_dict()
    topo, source = load_machine(None, None, None, default)
    assert len(topo.usable_cores) == 4 and source == "the calibration host"
    with pytest.raises(UsageError, match="give one machine"):
        load_machine("1s2c1t", str(tmp_path / "t.json"), None, default)
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(UsageError, match="scaler topology --json"):
        load_machine(None, str(tmp_path / "t.json"), None, default)
