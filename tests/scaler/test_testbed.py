"""The two-socket testbed: the tool run inside a QEMU guest with 2 sockets, 2 NUMA nodes,
2 cores per socket and 2 threads per core, on a real kernel.

One boot (module fixture, skipped without QEMU or a bootable host kernel) runs ``topology``,
``plan`` and a null-engine scaling run of shared and pinned N=2 in the guest; the tests read
back per worker what the guest's kernel says: allowed CPUs inside its partition's node, its
anonymous memory on that node (node 1 for the second pinned instance) after binding, the
shared instances spanning both nodes, and ``plan``'s partitions equal to what ran. Skipped
with ``SCALER_TESTBED_TEST=0``.

Not in the serial group: nothing here measures or takes the host's lock (the guest runs
``--no-lock`` on its own CPUs), so its TCG time, mostly one busy vCPU running Python, runs
beside the group at the low CPU weight of every test there (tests/priority.py): 47 s quiet,
93 s beside the group in ``make test``; 205 s before the kernel's ELF booted through PVH,
the project's modules were compiled and the guest drew no figures. Its three tests are one
xdist group of their own (one boot, on one worker); xdist hands out the largest groups
first, so it starts with the suite instead of ending it. No timing is judged, only
read-backs.
"""

from __future__ import annotations

import os
import shutil

import pytest

from affinity.numamaps import share_on
from scaler import testbed
from scaler.errors import UsageError
from scaler.targets.vmplan import Boot

NULL_COMMANDS = [
    ["topology", "--json"],
    ["plan", "--instances", "2", "--placement", "pinned", "--json"],
    ["scaling", "--engine", "null", "--placement", "shared,pinned", "--instances", "2",
     "--repeat", "1", "--min-duration", "0.5", "--warmup", "0.2", "--ready-timeout", "900",
     "--no-lock", "--out", "{out}"],
]


def test_the_guest_is_two_sockets_two_nodes_two_threads_per_core():
    plan = testbed.testbed_plan("tcg", 2048)
    argv = plan.argv(Boot("qemu", "k", "i", 3))
    assert argv[argv.index("-smp") + 1] == "cpus=8,sockets=2,cores=2,threads=2"
    numa = [argv[k + 1] for k, a in enumerate(argv) if a == "-numa"]
    assert numa[:2] == ["node,nodeid=0,cpus=0-3,memdev=ram0", "node,nodeid=1,cpus=4-7,memdev=ram1"]
    assert "dist,src=0,dst=1,val=21" in numa
    backends = [argv[k + 1] for k, a in enumerate(argv) if a == "-object"]
    assert [b.split(",")[:3] for b in backends] == [
        ["memory-backend-ram", "id=ram0", "size=1024M"], ["memory-backend-ram", "id=ram1",
                                                         "size=1024M"]]
    assert all("host-nodes" not in b for b in backends)  # the guest's nodes, not the host's
    assert "-S" in argv  # run() drops it: nothing to pin before the guest runs


def test_the_guest_runs_the_commands_without_figures_or_speed_probe():
    """Both cost minutes under TCG and say nothing of an emulated guest (the run folders come
    back to the host to be drawn)."""
    argv = testbed.guest_argv("/usr/bin/python3", [["topology", "--json"]], 60)
    env = argv[1:argv.index("/usr/bin/python3")]
    assert argv[0] == "-i" and {"SCALER_PLOTS=off", "SCALER_SPEED_PROBE=off"} <= set(env)
    assert argv[-2:] == ['[["topology", "--json"]]', "60"]


@pytest.fixture(scope="module")
def guest_run(tmp_path_factory):
    if os.environ.get("SCALER_TESTBED_TEST") == "0":
        pytest.skip("SCALER_TESTBED_TEST=0 leaves the two-socket guest out")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU not installed (apt-get install qemu-system-x86)")
    try:
        from scaler.targets.guestkernel import find_kernel

        find_kernel(None)
    except UsageError as exc:
        pytest.skip(f"no bootable host kernel: {exc}")
    out = tmp_path_factory.mktemp("testbed")
    results = testbed.run(NULL_COMMANDS, out, timeout_s=GUEST_TIMEOUT_S - 60,
                          command_timeout_s=900)
    for res in results:
        assert res.rc == 0, f"scaler {' '.join(res.argv)} in the guest: {res.stderr[-1500:]}"
    topo, plan, scaling = results
    (run,) = scaling.runs()
    return topo.json(), plan.json(), run


GUEST_TIMEOUT_S = 1500  # one TCG boot and three commands on 2 loaded cores (KVM: a minute)
GUEST = pytest.mark.xdist_group("testbed")  # the module's boot, once, on one worker


@GUEST
@pytest.mark.timeout(GUEST_TIMEOUT_S)
def test_the_guest_kernel_sees_two_sockets_two_nodes_and_siblings(guest_run):
    topo, _, _ = guest_run
    assert (topo["packages"], topo["cpus"], topo["threads_per_core"]) == (2, 8, 2)
    assert [n["cpus"] for n in topo["nodes"]] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [c["cpus"] for c in topo["physical_cores"]] == [[0, 1], [2, 3], [4, 5], [6, 7]]


def node_of(topo):
    return {cpu: n["id"] for n in topo["nodes"] for cpu in n["cpus"]}


@GUEST
@pytest.mark.timeout(GUEST_TIMEOUT_S)
def test_pinned_workers_run_and_keep_their_memory_on_their_partitions_node(guest_run):
    topo, plan, run = guest_run
    nodes = node_of(topo)
    (group,) = [g for g in run["groups"] if g["placement"] == "pinned"]
    planned = [(p["cpus"], p["nodes"]) for p in plan["partitions"]]
    ran = [(i["partition"]["cpus"], i["partition"]["nodes"]) for i in group["per_instance"]]
    assert ran == planned and [n for _, n in planned] == [[0], [1]]
    for inst, (cpus, (node,)) in zip(group["per_instance"], planned):
        binding = inst["binding"]
        assert binding["cpus"] == cpus and {nodes[c] for c in binding["cpus"]} == {node}
        assert binding["memory_policy"] == f"bind:{node}" and binding["memory_bound"]
        assert binding["memory_migrated"].startswith("moved from node(s)")
        memory = inst["memory_nodes"]
        # what the worker allocated itself (heap, stacks), read from its numa_maps after
        # warm-up: on its node, pages touched before the binding moved there too
        assert share_on(memory, {node}) >= 0.99, memory
        assert memory["anon_kb_by_node"].get(str(node), 0) > 1024


@GUEST
@pytest.mark.timeout(GUEST_TIMEOUT_S)
def test_shared_workers_span_both_nodes_unbound(guest_run):
    topo, _, run = guest_run
    nodes = node_of(topo)
    (group,) = [g for g in run["groups"] if g["placement"] == "shared"]
    assert len(group["per_instance"]) == 2
    for inst in group["per_instance"]:
        binding = inst["binding"]
        assert binding["cpus"] == list(range(8)) and {nodes[c] for c in binding["cpus"]} == {0, 1}
        assert binding["memory_policy"] == "default" and not binding["memory_bound"]
        assert sum(inst["memory_nodes"]["kb_by_node"].values()) > 1024
