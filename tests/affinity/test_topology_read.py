"""Reading sysfs trees of real machine shapes, the real /sys, and broken trees."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

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
    assert (offline.online, offline.package, offline.die, offline.core_id, offline.node) == (
        False, -1, -1, -1, 0)
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
    if allowed >= set(topo.online_cpus):
        assert topo.notes == ()  # nothing restricted, nothing to say
    assert topo.isa == read_isa("/proc/cpuinfo") == read_isa()
    assert topo.isa  # every x86-64 machine this runs on has avx2 at least
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


# --- exact values, optional files, and what each reader refuses ---------------------------


def tree(tmp_path, name="cloud-vm-adjacent", remove=(), **changes) -> str:
    """One fixture machine written under ``tmp_path`` with ``changes``, minus ``remove``."""
    from tests.affinity.fixtures import make_sysfs

    machine = dataclasses.replace(make_sysfs.machines()[name], **changes)
    root = make_sysfs.write(machine, str(tmp_path))
    for path in remove:
        full = os.path.join(root, path)
        if os.path.islink(full) or os.path.isfile(full):
            os.remove(full)
        else:
            import shutil

            shutil.rmtree(full)
    return root


def test_topology_json_of_a_restricted_two_socket_machine(trees):
    xeon = read_topology(trees["xeon-2s-ht"])
    topo = dataclasses.replace(xeon, usable_cpus=parse_cpulist("2-7,22-27,30-31"))
    doc = topo.to_dict()
    node0, node1 = doc.pop("nodes")
    cores = doc.pop("physical_cores")
    assert doc == {
        "sysfs_root": trees["xeon-2s-ht"], "packages": 2, "package_ids": [0, 1], "dies": 2,
        "cores": 8, "cpus": 14, "threads_per_core": 2,
        "usable_cpus": list(parse_cpulist("2-7,22-27,30-31")),
        "usable_cpulist": "2-7,22-27,30-31", "online_cpus": list(range(40)),
        "offline_cpus": [], "isa": ["avx2"], "notes": [],
    }
    assert node0 == {"id": 0, "cpus": list(parse_cpulist("0-9,20-29")),
                     "usable_cpus": list(parse_cpulist("2-7,22-27")), "cores": 6,
                     "memory_bytes": 64 * 2**30, "has_cpu": True, "distances": [10, 32]}
    assert node1 == {"id": 1, "cpus": list(parse_cpulist("10-19,30-39")),
                     "usable_cpus": [30, 31], "cores": 2,
                     "memory_bytes": 64 * 2**30, "has_cpu": True, "distances": [32, 10]}
    expected = [(0, c, (cpu, cpu + 20)) for c, cpu in zip([2, 3, 4, 8, 9, 10], range(2, 8))]
    expected += [(1, 0, (30,)), (1, 1, (31,))]
    assert [(c["package"], c["core_id"], tuple(c["cpus"])) for c in cores] == expected
    assert all(c["die"] == 0 and c["node"] == c["package"] and c["kind"] == "" for c in cores)
    json.dumps(doc)


def test_an_offline_cpu_is_no_package_and_no_die(trees):
    topo = read_topology(trees["offline-cpus"])  # offline CPUs read as package -1, die -1
    assert {cpu.package for cpu in topo.cpus} == {0, -1}
    assert topo.packages == (0,) and topo.dies == 1
    assert (topo.to_dict()["packages"], topo.to_dict()["package_ids"]) == (1, [0])
    assert topo.online_cpus == tuple(c for c in range(16) if c not in (5, 6, 13))


def test_counts_of_every_fixture(trees):
    expected = {  # packages, dies, cores, threads per core, CPU nodes
        "xeon-2s-ht": (2, 2, 20, 2, 2), "epyc-2s-nps4": (2, 2, 32, 2, 8),
        "cloud-vm-adjacent": (1, 1, 4, 2, 1), "numa-16": (2, 4, 32, 2, 16),
        "uneven-43-43-42": (1, 1, 128, 1, 3), "offline-cpus": (1, 1, 7, 2, 1),
        "cxl-memory-node": (1, 1, 16, 2, 1), "hybrid-alder-lake": (1, 1, 16, 2, 1),
        "old-kernel": (2, 2, 8, 2, 1), "minimal-container": (1, 1, 4, 1, 1),
    }
    for name, counts in expected.items():
        topo = read_topology(trees[name])
        got = (len(topo.packages), topo.dies, len(topo.usable_cores), topo.threads_per_core,
               len(topo.cpu_nodes))
        assert got == counts, name


def test_hybrid_efficiency_cores_and_plain_cores_have_their_kind(trees):
    hybrid = read_topology(trees["hybrid-alder-lake"])
    assert {core.cpus[0]: core.kind for core in hybrid.cores}[16] == "efficiency"
    assert {core.kind for core in read_topology(trees["xeon-2s-ht"]).cores} == {""}


def test_cpu_online_flags_without_the_global_online_list(tmp_path):
    root = tree(tmp_path, offline=frozenset({3, 6}),
                remove=["devices/system/cpu/online"])
    topo = read_topology(root)
    assert topo.offline_cpus == (3, 6) and topo.online_cpus == (0, 1, 2, 4, 5, 7)
    assert 0 in topo.usable_cpus  # cpu0 has no online flag: online


def test_a_cpu_missing_from_the_node_lists_takes_its_node_link(tmp_path):
    root = tree(tmp_path, overrides={"devices/system/node/node0/cpulist": "0-6\n"})
    topo = read_topology(root)
    assert next(cpu for cpu in topo.cpus if cpu.id == 7).node == 0
    assert topo.nodes[0].cpus == tuple(range(7))


def test_an_online_cpu_in_no_node_is_an_error(tmp_path):
    root = tree(tmp_path, overrides={"devices/system/node/node0/cpulist": "0-6\n"},
                remove=["devices/system/cpu/cpu7/node0"])
    with pytest.raises(TopologyError, match=f"^cpu7 is online but in no NUMA node under {root}$"):
        read_topology(root)


def test_no_online_cpu_is_not_a_sysfs_tree(tmp_path):
    root = tree(tmp_path, overrides={"devices/system/cpu/online": "\n"})
    with pytest.raises(TopologyError, match="is not a sysfs tree: no online CPU under"):
        read_topology(root)


def test_without_node_folder_one_node_holds_every_online_cpu(tmp_path):
    root = tree(tmp_path, offline=frozenset({5}), remove=["devices/system/node"])
    node, = read_topology(root).nodes
    assert (node.id, node.cpus, node.memory_bytes, node.has_cpu, node.distances) == (
        0, (0, 1, 2, 3, 4, 6, 7), 0, True, ())


def test_node_files_that_are_optional_or_wrong(tmp_path):
    root = tree(tmp_path, remove=["devices/system/node/node0/distance",
                                  "devices/system/node/node0/meminfo"])
    node = read_topology(root).nodes[0]
    assert (node.distances, node.memory_bytes) == ((), 0)
    root = tree(tmp_path / "b", overrides={"devices/system/node/node0/meminfo": "Node 0 X: 1\n"})
    with pytest.raises(TopologyError, match="node0/meminfo: no 'MemTotal: N kB' line$"):
        read_topology(root)


def test_cpus_of_an_offline_cpu_in_a_node_list_are_not_the_node_s(tmp_path):
    root = tree(tmp_path, offline=frozenset({2}),
                overrides={"devices/system/node/node0/cpulist": "0-7\n"})
    topo = read_topology(root)
    assert topo.nodes[0].cpus == (0, 1, 3, 4, 5, 6, 7)
    assert next(cpu for cpu in topo.cpus if cpu.id == 2).node == 0


def test_unreadable_and_malformed_integer_files_name_the_file(tmp_path):
    root = tree(tmp_path, overrides={"devices/system/cpu/cpu1/topology/core_id": "-1\n"})
    assert any(core.core_id == -1 for core in read_topology(root).cores)  # -1 is an integer
    root = tree(tmp_path / "b", remove=["devices/system/cpu/cpu3/topology/core_id"])
    os.mkdir(os.path.join(root, "devices/system/cpu/cpu3/topology/core_id"))
    with pytest.raises(TopologyError) as info:
        read_topology(root)
    assert str(info.value) == (f"cannot read {root}/devices/system/cpu/cpu3/topology/core_id: "
                               "Is a directory")
    root = tree(tmp_path / "c", overrides={"devices/system/node/node0/distance": "10 -1\n"})
    with pytest.raises(TopologyError, match=r"node0/distance: expected integers, found '10 -1'$"):
        read_topology(root)
    root = tree(tmp_path / "d", overrides={"devices/system/cpu/cpu2/topology/core_id": " 4 \n"})
    assert {core.core_id for core in read_topology(root).cores} >= {4}
    root = tree(tmp_path / "e", overrides={"devices/system/cpu/cpu2/topology/die_id": "x\n"})
    with pytest.raises(TopologyError, match=r"cpu2/topology/die_id: expected an integer, "
                                            r"found 'x'$"):
        read_topology(root)


def test_cpu_kinds_read_from_both_core_type_lists(tmp_path):
    root = tree(tmp_path, overrides={"devices/cpu_core/cpus": "0-3\n",
                                     "devices/cpu_atom/cpus": "4-7\n"})
    kinds = [core.kind for core in read_topology(root).cores]
    assert kinds == ["performance", "performance", "efficiency", "efficiency"]


def test_minimal_sysfs_notes_name_each_cpu(trees):
    topo = read_topology(trees["minimal-container"])
    assert topo.notes == tuple(f"cpu{c} has no topology folder: counted as its own core"
                               for c in range(4))
    assert [(core.package, core.die, core.core_id) for core in topo.cores] == [
        (0, 0, c) for c in range(4)]


def test_isa_of_the_first_flags_line_only_in_isa_order(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags no colon avx2\nvmx flags\t: avx512f\n"
                    "flags\t\t: amx_int8 avx512_bf16 avx2 fpu\n\nflags\t: avx512f\n")
    assert read_isa(str(info)) == ("avx2", "avx512_bf16", "amx_int8")
    info.write_text("processor\t: 0\n")
    assert read_isa(str(info)) == ()


def test_a_tree_without_cpuinfo_has_no_isa(tmp_path):
    root = tree(tmp_path)
    os.remove(os.path.join(os.path.dirname(root), "cpuinfo"))
    assert read_topology(root).isa == ()
    assert read_topology(root, cpuinfo_path=str(tmp_path / "missing")).isa == ()


def test_a_restricted_affinity_on_the_real_sys_is_a_note():
    online = read_topology().online_cpus
    if len(online) < 2:
        pytest.skip("needs two online CPUs")
    code = (
        "import json, os\n"
        "from affinity import read_topology\n"
        f"os.sched_setaffinity(0, {{{online[0]}}})\n"
        "t = read_topology()\n"
        "print(json.dumps([t.usable_cpus, t.notes]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    usable, notes = json.loads(done.stdout)
    assert usable == [online[0]]
    assert notes == [f"this process may use 1 of {len(online)} online CPUs ({online[0]}): "
                     "affinity or cpuset"]


def test_an_online_cpu_without_folder_or_node_is_an_error(tmp_path):
    root = tree(tmp_path, overrides={"devices/system/cpu/online": "0-8\n"})
    with pytest.raises(TopologyError, match="^cpu8 is online but in no NUMA node under "):
        read_topology(root)


def test_an_offline_cpu_without_node_link_is_in_node_minus_one(tmp_path):
    root = tree(tmp_path, offline=frozenset({5}), remove=["devices/system/cpu/cpu5/node0"])
    cpu5 = next(cpu for cpu in read_topology(root).cpus if cpu.id == 5)
    assert (cpu5.online, cpu5.node) == (False, -1)


def test_node_lists_alone_place_the_cpus(tmp_path):
    root = tree(tmp_path, remove=[f"devices/system/cpu/cpu{c}/node0" for c in range(8)])
    assert {cpu.node for cpu in read_topology(root).cpus} == {0}


def test_without_node_folder_every_cpu_is_in_node_0(trees):
    topo = read_topology(trees["old-kernel"])
    assert {cpu.node for cpu in topo.cpus} == {0} and {c.node for c in topo.cores} == {0}


def test_bytes_that_are_not_text_are_malformed_not_a_crash(tmp_path):
    root = tree(tmp_path)
    with open(os.path.join(root, "devices/system/cpu/cpu2/topology/core_id"), "wb") as f:
        f.write(b"\xff1\n")
    with pytest.raises(TopologyError, match="cpu2/topology/core_id: expected an integer"):
        read_topology(root)
    info = tmp_path / "cpuinfo"
    info.write_bytes(b"model name\t: \xff\xfe\nflags\t\t: avx2 \xff avx512f\n")
    assert read_isa(str(info)) == ("avx2", "avx512f")


def test_a_cpu_less_node_counts_no_core(trees):
    nodes = read_topology(trees["cxl-memory-node"]).to_dict()["nodes"]
    assert [(n["id"], n["cores"], n["usable_cpus"], n["has_cpu"]) for n in nodes] == [
        (0, 16, list(range(32)), True), (1, 0, [], False)]
