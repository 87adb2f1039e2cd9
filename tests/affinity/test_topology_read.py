"""Reading sysfs trees of real machine shapes, the real /sys, and broken trees."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from affinity import ISA_FLAGS, AffinityError, TopologyError, read_isa, read_topology
from affinity.cpulist import parse_cpulist
from tests.affinity.fixtures.make_sysfs import machines

GOOD = list(machines())  # every well-formed fixture machine


def core_cpus(topo):
    return {core.key: core.cpus for core in topo.cores}


@pytest.mark.parametrize("name", GOOD)
def test_every_fixture_reads_consistently(trees, name):
    topo = read_topology(trees[name])
    usable = set(topo.usable_cpus)
    assert usable == set(topo.online_cpus)  # a foreign tree: usable = its online CPUs
    # every usable CPU is in exactly one core and one node
    in_cores = [cpu for core in topo.usable_cores for cpu in core.cpus]
    assert sorted(in_cores) == sorted(usable)
    in_nodes = [cpu for node in topo.nodes for cpu in node.cpus]
    assert sorted(in_nodes) == sorted(usable)
    assert len({core.key for core in topo.cores}) == len(topo.cores)
    node_of = {cpu.id: cpu.node for cpu in topo.cpus}
    assert all(node_of[cpu] == core.node for core in topo.cores for cpu in core.cpus)
    assert set(topo.isa) <= set(ISA_FLAGS)
    json.dumps(topo.to_dict())


def test_xeon_siblings_are_n_and_n_plus_cores_with_sparse_core_ids(trees):
    topo = read_topology(trees["xeon-2s-ht"])
    assert topo.packages == (0, 1)
    assert len(topo.usable_cores) == 20 and len(topo.usable_cpus) == 40
    assert topo.threads_per_core == 2
    ids = sorted({core.core_id for core in topo.cores})
    assert ids == [0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
    assert core_cpus(topo)[(0, 0, 8)] == (5, 25)
    assert core_cpus(topo)[(1, 0, 12)] == (19, 39)
    assert [node.cpus for node in topo.nodes] == [
        parse_cpulist("0-9,20-29"),
        parse_cpulist("10-19,30-39"),
    ]
    assert topo.nodes[0].distances == (10, 32)
    assert topo.nodes[0].memory_bytes == 64 * 2**30
    assert topo.isa == ("avx2",)


def test_epyc_nps4_has_eight_nodes(trees):
    topo = read_topology(trees["epyc-2s-nps4"])
    assert [node.id for node in topo.cpu_nodes] == list(range(8))
    assert topo.nodes[3].cpus == parse_cpulist("12-15,44-47")
    assert topo.nodes[0].distances == (10, 12, 12, 12, 32, 32, 32, 32)
    assert all(len(node.cpus) == 8 for node in topo.nodes)


def test_cloud_vm_siblings_are_adjacent(trees):
    topo = read_topology(trees["cloud-vm-adjacent"])
    assert [core.cpus for core in topo.cores] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert topo.isa == ("avx2", "avx512f", "avx512_vnni")


def test_two_digit_node_ids_and_dies(trees):
    topo = read_topology(trees["numa-16"])
    assert [node.id for node in topo.nodes] == list(range(16))
    assert topo.nodes[12].cpus == parse_cpulist("24-25,56-57")
    # core ids restart on every die: (package, die, core id) keeps them apart
    assert len(topo.cores) == 32 and topo.dies == 4
    assert {core.key for core in topo.cores if core.node == 5} == {(0, 1, 2), (0, 1, 3)}


def test_uneven_nodes(trees):
    topo = read_topology(trees["uneven-43-43-42"])
    assert [len(node.cpus) for node in topo.nodes] == [43, 43, 42]
    assert topo.threads_per_core == 1


def test_offline_cpus_without_topology_folders(trees):
    topo = read_topology(trees["offline-cpus"])
    assert topo.offline_cpus == (5, 6, 13)
    assert 5 not in topo.usable_cpus and len(topo.usable_cpus) == 13
    offline = next(cpu for cpu in topo.cpus if cpu.id == 6)
    assert (offline.online, offline.package, offline.core_id, offline.node) == (False, -1, -1, 0)
    assert len(topo.usable_cores) == 7  # core 5 is gone, core 6 keeps CPU 14
    assert core_cpus(topo)[(0, 0, 6)] == (14,)
    assert topo.threads_per_core == 2


def test_cpu_less_memory_node_is_kept_and_marked(trees):
    topo = read_topology(trees["cxl-memory-node"])
    cxl = topo.nodes[1]
    assert (cxl.id, cxl.cpus, cxl.has_cpu) == (1, (), False)
    assert cxl.memory_bytes == 128 * 2**30
    assert [node.id for node in topo.cpu_nodes] == [0]
    assert "amx_int8" in topo.isa and "avx512_bf16" in topo.isa


def test_hybrid_cores_have_kinds_and_mixed_smt(trees):
    topo = read_topology(trees["hybrid-alder-lake"])
    p_cores = [core for core in topo.cores if core.kind == "performance"]
    e_cores = [core for core in topo.cores if core.kind == "efficiency"]
    assert len(p_cores) == 8 and all(len(core.cpus) == 2 for core in p_cores)
    assert len(e_cores) == 8 and all(len(core.cpus) == 1 for core in e_cores)
    assert p_cores[1].cpus == (2, 3) and p_cores[1].core_id == 4
    assert topo.isa == ("avx2", "avx_vnni")


def test_old_kernel_without_die_id_core_cpus_list_or_nodes(trees):
    topo = read_topology(trees["old-kernel"])
    assert len(topo.nodes) == 1
    node = topo.nodes[0]
    assert (node.id, node.cpus, node.has_cpu) == (0, tuple(range(16)), True)
    assert {core.die for core in topo.cores} == {0}
    assert len(topo.cores) == 8 and topo.threads_per_core == 2


def test_minimal_sysfs_counts_each_cpu_as_a_core_and_says_so(trees):
    topo = read_topology(trees["minimal-container"])
    assert [core.cpus for core in topo.cores] == [(0,), (1,), (2,), (3,)]
    assert len(topo.notes) == 4 and "cpu0 has no topology folder" in topo.notes[0]


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("broken-cpulist", "devices/system/node/node0/cpulist"),
        ("broken-core-id", "devices/system/cpu/cpu2/topology/core_id"),
    ],
)
def test_broken_tree_names_the_file(trees, name, path):
    with pytest.raises(TopologyError) as info:
        read_topology(trees[name])
    message = str(info.value)
    assert os.path.join(trees[name], path) in message and "\n" not in message
    assert isinstance(info.value, AffinityError) and isinstance(info.value, ValueError)


def test_malformed_distance_names_the_file(tmp_path, trees):
    from tests.affinity.fixtures import make_sysfs

    root = make_sysfs.write_all(str(tmp_path), ["cloud-vm-adjacent"])["cloud-vm-adjacent"]
    bad = os.path.join(root, "devices/system/node/node0/distance")
    with open(bad, "w") as handle:
        handle.write("10 x\n")
    with pytest.raises(TopologyError, match="node0/distance"):
        read_topology(root)


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing", lambda p: p / "file"])
def test_not_a_sysfs_tree(tmp_path, make):
    (tmp_path / "file").write_text("x")
    root = str(make(tmp_path))
    with pytest.raises(TopologyError, match="is not a sysfs tree"):
        read_topology(root)


def test_real_sys_uses_this_process_affinity():
    topo = read_topology()
    allowed = os.sched_getaffinity(0)
    assert set(topo.usable_cpus) == allowed & set(topo.online_cpus)
    assert topo.sysfs_root == "/sys" and topo.threads_per_core >= 1
    assert set(topo.isa) <= set(ISA_FLAGS)
    assert all(node.memory_bytes > 0 for node in topo.cpu_nodes)


def test_isa_reader(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile avx512f\n\n")
    assert read_isa(str(info)) == ("avx2", "avx512f", "amx_tile")
    assert read_isa(str(tmp_path / "none")) == ()
    assert read_topology("/sys", cpuinfo_path=str(info)).isa == ("avx2", "avx512f", "amx_tile")


def test_dataclasses_are_frozen(trees):
    topo = read_topology(trees["cloud-vm-adjacent"])
    for thing in (topo, topo.cpus[0], topo.cores[0], topo.nodes[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            thing.id = 1  # type: ignore[misc]
    assert isinstance(topo.cpus, tuple) and isinstance(topo.cores[0].cpus, tuple)


def test_topology_json_keys(trees):
    doc = read_topology(trees["xeon-2s-ht"]).to_dict()
    assert (doc["packages"], doc["cores"], doc["cpus"], doc["threads_per_core"]) == (2, 20, 40, 2)
    assert [node["id"] for node in doc["nodes"]] == [0, 1]
    assert doc["nodes"][1]["cpus"] == list(parse_cpulist("10-19,30-39"))
    assert doc["isa"] == ["avx2"]
