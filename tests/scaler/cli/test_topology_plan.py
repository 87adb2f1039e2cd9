"""``scaler topology`` and ``scaler plan`` as a user runs them, on this machine and on the
sysfs fixtures of other machine shapes."""

from __future__ import annotations

import json
import os

import pytest

from tests.affinity.fixtures import make_sysfs
from tests.scaler.helpers import scaler_cmd

TIMEOUT = 60

# name: (packages, usable cores, usable CPUs, threads per core, nodes)
SHAPES = {
    "xeon-2s-ht": (2, 20, 40, 2, 2),
    "epyc-2s-nps4": (2, 32, 64, 2, 8),
    "cloud-vm-adjacent": (1, 4, 8, 2, 1),
    "numa-16": (2, 32, 64, 2, 16),
    "uneven-43-43-42": (1, 128, 128, 1, 3),
    "offline-cpus": (1, 7, 13, 2, 1),
    "cxl-memory-node": (1, 16, 32, 2, 2),
    "hybrid-alder-lake": (1, 16, 24, 2, 1),
    "old-kernel": (2, 8, 16, 2, 1),
    "minimal-container": (1, 4, 4, 1, 1),
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, str]:
    return make_sysfs.write_all_once(str(tmp_path_factory.getbasetemp() / "sysfs"))


def run_json(*args: str) -> dict:
    done = scaler_cmd(*args, "--json", timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done, *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scaler: error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_topology_json_on_fixtures(trees, name):
    doc = run_json("topology", "--sysfs-root", trees[name])
    got = (doc["packages"], doc["cores"], doc["cpus"], doc["threads_per_core"], len(doc["nodes"]))
    assert got == SHAPES[name]
    for node in doc["nodes"]:
        assert isinstance(node["id"], int)
        assert all(isinstance(cpu, int) for cpu in node["cpus"])
    assert isinstance(doc["isa"], list) and all(isinstance(flag, str) for flag in doc["isa"])


def test_topology_on_this_machine():
    doc = run_json("topology")
    assert doc["cpus"] == len(os.sched_getaffinity(0))
    assert doc["cores"] >= 1 and doc["threads_per_core"] >= 1 and doc["nodes"]
    table = scaler_cmd("topology", timeout=TIMEOUT)
    assert table.returncode == 0, table.stderr
    assert "usable CPUs" in table.stdout and "ISA features" in table.stdout


def test_plan_json_keys_and_partitions(trees):
    doc = run_json("plan", "--instances", "2", "--smt", "--sysfs-root", trees["xeon-2s-ht"])
    assert doc["oversubscribed"] is False and doc["warnings"] == []
    parts = doc["partitions"]
    assert [p["nodes"] for p in parts] == [[0], [1]]
    assert parts[0]["cpus"] == [*range(10), *range(20, 30)]
    doc = run_json("plan", "-n", "8", "--sysfs-root", trees["epyc-2s-nps4"])
    assert [p["nodes"] for p in doc["partitions"]] == [[n] for n in range(8)]
    assert any("SMT sibling" in w for w in doc["warnings"])


def test_plan_fixed_size_and_oversubscription(trees):
    root = trees["cloud-vm-adjacent"]
    doc = run_json("plan", "-n", "2", "--cores-per-instance", "1", "--sysfs-root", root)
    assert [p["cpus"] for p in doc["partitions"]] == [[0], [2]]
    doc = run_json("plan", "-n", "8", "--oversubscribe", "--sysfs-root", root)
    assert doc["oversubscribed"] is True and doc["oversubscription"] == 2.0
    assert len(doc["partitions"]) == 8


def test_plan_of_several_counts_is_each_counts_plan_in_order(trees):
    """``--instances 2,4`` (as a sweep takes it; the two-socket testbed asks for it): a JSON
    list of exactly what each count alone gives; tables under a line naming the count."""
    root = trees["xeon-2s-ht"]
    docs = run_json("plan", "--instances", "4,2", "--sysfs-root", root)
    assert docs == [run_json("plan", "-n", "2", "--sysfs-root", root),
                    run_json("plan", "-n", "4", "--sysfs-root", root)]
    assert [len(d["partitions"]) for d in docs] == [2, 4]
    assert len(run_json("plan", "-n", "1-3", "--sysfs-root", root)) == 3
    done = scaler_cmd("plan", "-n", "2,4", "--sysfs-root", root, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.index("== 2 instance(s)") < done.stdout.index("== 4 instance(s)")
    one = scaler_cmd("plan", "-n", "2", "--sysfs-root", root, timeout=TIMEOUT).stdout
    assert "== 2 instance(s)" not in one and one.strip() in done.stdout
    for bad, says in (("0", "at least 1"), ("2,x", "bad instance list"), ("4-2", "backwards")):
        r = scaler_cmd("plan", "-n", bad, "--sysfs-root", root, timeout=TIMEOUT)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_plan_table_on_this_machine():
    done = scaler_cmd("plan", "--instances", "1", timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "instance" in done.stdout and "cpulist" in done.stdout


def test_plan_table_shows_warnings(trees):
    done = scaler_cmd("plan", "-n", "3", "--sysfs-root", trees["xeon-2s-ht"], timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "warnings:" in done.stdout and "span more than one NUMA node" in done.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        # counts read as a sweep reads them (scaler.settings.parse_instances)
        (["plan", "--instances", "0"], ["instance counts must be at least 1"]),
        (["plan", "--instances", "-2"], ["bad instance list '-2'"]),
        (["plan", "-n", "1", "--cores-per-instance", "99"], ["99 cores per instance"]),
        (["plan", "-n", "1", "-k", "0"], ["cores per instance must be at least 1"]),
        (["plan", "-n", "999"], ["999 instances", "--oversubscribe"]),
    ],
)
def test_bad_plan_requests(args, fragments):
    assert_one_line_error(scaler_cmd(*args, timeout=TIMEOUT), *fragments)


@pytest.mark.parametrize("command", [["topology"], ["plan", "-n", "1"]])
def test_a_root_that_is_not_sysfs(tmp_path, command):
    done = scaler_cmd(*command, "--sysfs-root", str(tmp_path), timeout=TIMEOUT)
    assert_one_line_error(done, str(tmp_path), "is not a sysfs tree")


@pytest.mark.parametrize("command", [["topology", "--json"], ["plan", "-n", "2"]])
def test_a_malformed_cpulist_names_the_file(trees, command):
    done = scaler_cmd(*command, "--sysfs-root", trees["broken-cpulist"], timeout=TIMEOUT)
    assert_one_line_error(done, "node0/cpulist", "'0-3,,8'")


# -- scaler plan --placement vm: the VMs a run would boot, without booting them -------------


def core_keys(doc: dict) -> dict[int, tuple]:
    return {cpu: (c["package"], c["die"], c["core_id"]) for c in doc["physical_cores"]
            for cpu in c["cpus"]}


def test_plan_vm_json_on_the_xeon(trees):
    root = trees["xeon-2s-ht"]
    doc = run_json("plan", "--placement", "vm", "--sysfs-root", root, "-n", "2", "--smt",
                   "--vm-memory", "2G")
    topo = run_json("topology", "--sysfs-root", root)
    keys = core_keys(topo)
    for part in doc["partitions"]:
        vm = part["vm"]
        assert sorted(vm["vcpus"]) == part["cpus"]
        assert vm["smp"] == {"sockets": 1, "cores": 10, "threads": 2}
        assert vm["numa_nodes"] == part["nodes"]
        # QEMU's vCPUs 2k and 2k+1 are one core's threads: host siblings
        for k in range(0, len(vm["vcpus"]), 2):
            assert keys[vm["vcpus"][k]] == keys[vm["vcpus"][k + 1]]
        argv = vm["argv"]
        assert argv[0].endswith("qemu-system-x86_64") and "-S" in argv
        assert argv[argv.index("-smp") + 1] == "cpus=20,sockets=1,cores=10,threads=2"
        assert "host-cache-info=on" in argv[argv.index("-cpu") + 1]
        backend = argv[argv.index("-object") + 1]
        assert f"host-nodes={part['nodes'][0]},policy=bind" in backend
        assert "merge=off" in backend and "prealloc=on" in backend and "size=2048M" in backend
    assert doc["partitions"][0]["vm"]["vcpus"][:4] == [0, 20, 1, 21]
    assert doc["vm"]["accel"] == "kvm" and doc["vm"]["notes"]


def test_plan_vm_epyc_nps4_whole_machine_has_eight_guest_nodes(trees):
    doc = run_json("plan", "--placement", "vm", "--sysfs-root", trees["epyc-2s-nps4"], "-n",
                   "1", "--smt", "--accel", "tcg")
    vm = doc["partitions"][0]["vm"]
    assert vm["numa_nodes"] == list(range(8)) and vm["accel"] == "tcg"
    assert vm["smp"] == {"sockets": 2, "cores": 16, "threads": 2}
    argv = vm["argv"]
    numa = [a for a in argv if a.startswith("node,nodeid=")]
    assert len(numa) == 8 and "-overcommit" not in argv
    assert argv[argv.index("-cpu") + 1] == "max,vendor=GenuineIntel"  # TCG: guest sees SMT
    topo = run_json("topology", "--sysfs-root", trees["epyc-2s-nps4"])
    node_of = {cpu: n["id"] for n in topo["nodes"] for cpu in n["cpus"]}
    for guest in vm["guest_nodes"]:
        assert {node_of[vm["vcpus"][k]] for k in guest["vcpus"]} == {guest["host_node"]}


def test_plan_vm_table_and_oversubscription(trees):
    root = trees["cloud-vm-adjacent"]
    done = scaler_cmd("plan", "--placement", "vm", "--sysfs-root", root, "-n", "1", "--smt",
                      timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "vm 0: 8 vCPUs as sockets=1 cores=4 threads=2" in done.stdout
    assert "vCPU->CPU  0:0 1:1 2:2 3:3" in done.stdout and "nothing was booted" in done.stdout
    assert "-overcommit cpu-pm=on" in done.stdout
    doc = run_json("plan", "--placement", "vm", "--sysfs-root", root, "-n", "6",
                   "--oversubscribe")
    for part in doc["partitions"]:  # shared cores: no dedicated-vCPU settings
        assert "-overcommit" not in part["vm"]["argv"]
        assert part["vm"]["tuning"]["kvm_hint_dedicated"] is False


def test_plan_without_placement_has_no_vm(trees):
    doc = run_json("plan", "-n", "2", "--sysfs-root", trees["xeon-2s-ht"])
    assert "vm" not in doc and all("vm" not in p for p in doc["partitions"])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--placement", "shared"], ["plan shows pinned or vm"]),
        (["--placement", "vm", "--accel", "xen"], ["unknown --accel 'xen'"]),
        (["--placement", "vm", "--vm-memory", "1x"], ["bad --vm-memory"]),
    ],
)
def test_bad_plan_vm_requests(trees, args, fragments):
    done = scaler_cmd("plan", "-n", "1", "--sysfs-root", trees["xeon-2s-ht"], *args,
                      timeout=TIMEOUT)
    assert_one_line_error(done, *fragments)


def test_plan_vm_accel_kvm_on_this_machine_without_kvm():
    from scaler.targets.accel import detect_accel

    found = detect_accel()
    if not found.emulated:
        pytest.skip("this machine has KVM")
    done = scaler_cmd("plan", "--placement", "vm", "-n", "1", "--accel", "kvm", timeout=TIMEOUT)
    assert_one_line_error(done, "--accel kvm: KVM cannot be used here", found.reason)
