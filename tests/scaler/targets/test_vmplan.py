"""The VM a partition gets, on the sysfs fixtures of real machine shapes.

Sibling and node expectations come from the topology the fixture writer describes (which
CPUs share a core or a node), not from the code under test; the vCPU numbering of QEMU is
asked of QEMU itself: each plan's command line is started paused (``-S``, TCG, nothing
runs) and ``query-cpus-fast`` says which socket, core, thread and guest node every vCPU has,
and ``query-memdev`` how each guest node's memory is backed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest

from affinity import plan, read_topology
from scaler.errors import UsageError
from scaler.targets.vmplan import Boot, VmOptions, apic_id, guest_partition, vm_plan
from tests.affinity.fixtures import make_sysfs

QEMU = shutil.which("qemu-system-x86_64")


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, str]:
    return make_sysfs.write_all_once(str(tmp_path_factory.getbasetemp() / "sysfs"))


def plans(root: str, n: int, smt: bool, **options):
    topo = read_topology(root)
    the_plan = plan(topo, n, smt=smt, oversubscribe=True)
    opts = VmOptions(**{"memory_mb": 1024, **options})
    return topo, the_plan, [vm_plan(topo, p.cpus, p.nodes, p.index, opts)
                            for p in the_plan.partitions]


def core_of(topo) -> dict[int, tuple[int, int, int]]:
    return {cpu: core.key for core in topo.cores for cpu in core.cpus}


def assert_siblings_kept(topo, vm) -> None:
    """QEMU's rule (thread k % T of core k // T): vCPUs of one guest core are exactly the
    CPUs of one host core, and every host core of the partition is one guest core."""
    host_core = core_of(topo)
    guest_cores: dict[int, set] = {}
    for k, cpu in enumerate(vm.cpus):
        guest_cores.setdefault(k // vm.threads, set()).add(host_core[cpu])
    assert all(len(keys) == 1 for keys in guest_cores.values()), guest_cores
    assert len(guest_cores) == len({host_core[c] for c in vm.cpus})


@pytest.mark.parametrize("name", ["xeon-2s-ht", "epyc-2s-nps4", "cloud-vm-adjacent"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_guest_siblings_are_host_siblings(trees, name, n):
    topo, the_plan, vms = plans(trees[name], n, smt=True)
    for part, vm in zip(the_plan.partitions, vms, strict=True):
        assert sorted(vm.cpus) == sorted(part.cpus)
        assert vm.threads == 2 and vm.sockets * vm.cores * vm.threads == len(part.cpus)
        assert_siblings_kept(topo, vm)


def test_xeon_split_numbering_pairs_n_with_n_plus_20(trees):
    _, _, (vm0, vm1) = plans(trees["xeon-2s-ht"], 2, smt=True)
    assert vm0.cpus[:6] == (0, 20, 1, 21, 2, 22)  # the fixture: siblings n and n+20
    assert vm1.cpus[:4] == (10, 30, 11, 31)
    assert vm0.smp == "cpus=20,sockets=1,cores=10,threads=2"


def test_adjacent_numbering_keeps_cpu_order(trees):
    _, _, (vm,) = plans(trees["cloud-vm-adjacent"], 1, smt=True)
    assert vm.cpus == tuple(range(8)) and vm.smp == "cpus=8,sockets=1,cores=4,threads=2"


def test_without_smt_one_thread_per_core(trees):
    topo, _, vms = plans(trees["xeon-2s-ht"], 2, smt=False)
    assert all(vm.threads == 1 and vm.cores == 10 for vm in vms)
    assert len({core_of(topo)[c] for c in vms[0].cpus}) == 10


def test_whole_two_socket_machine_gets_two_sockets_and_two_nodes(trees):
    topo, _, (vm,) = plans(trees["xeon-2s-ht"], 1, smt=True)
    assert (vm.sockets, vm.cores, vm.threads) == (2, 10, 2)
    assert [n.host_node for n in vm.nodes] == [0, 1]
    node_of = {cpu.id: cpu.node for cpu in topo.cpus}
    for node in vm.nodes:  # QEMU's socket of vCPU k is k // 20: one host package each
        assert {node_of[vm.cpus[k]] for k in node.vcpus} == {node.host_node}
        assert {k // 20 for k in node.vcpus} == {node.id}
    assert vm.nodes[0].distances == (10, 32) and vm.nodes[1].distances == (32, 10)
    assert sum(n.memory_mb for n in vm.nodes) == 1024


@pytest.mark.parametrize("n", [1, 3, 5])
def test_epyc_nps4_guest_nodes_bound_to_their_host_nodes(trees, n):
    topo, the_plan, vms = plans(trees["epyc-2s-nps4"], n, smt=True)
    node_of = {cpu.id: cpu.node for cpu in topo.cpus}
    for part, vm in zip(the_plan.partitions, vms, strict=True):
        assert [node.host_node for node in vm.nodes] == sorted(part.nodes)
        for node in vm.nodes:
            assert {node_of[vm.cpus[k]] for k in node.vcpus} == {node.host_node}
            assert list(node.vcpus) == list(range(node.vcpus[0], node.vcpus[-1] + 1))
            assert node.memory_mb % 2 == 0
            # memory follows the vCPUs (within one 2 MiB page of the exact share)
            assert abs(node.memory_mb - 1024 * len(node.vcpus) / len(vm.cpus)) <= 2 * len(
                vm.nodes)
        assert vm.memory_mb == 1024
        argv = vm.argv(Boot("qemu", "K", "I", 3))
        if len(vm.nodes) > 1:
            for node in vm.nodes:
                assert (f"node,nodeid={node.id},cpus={node.vcpus[0]}-{node.vcpus[-1]},"
                        f"memdev=ram{node.id}") in argv
                backend = next(a for a in argv if a.startswith(
                    f"memory-backend-ram,id=ram{node.id},"))
                assert f"host-nodes={node.host_node},policy=bind" in backend
    if n == 1:
        (vm,) = vms
        assert len(vm.nodes) == 8 and (vm.sockets, vm.cores, vm.threads) == (2, 16, 2)
        assert vm.nodes[0].distances == (10, 12, 12, 12, 32, 32, 32, 32)


def test_argv_carries_the_dedicated_vm_settings(trees):
    _, _, (vm, _) = plans(trees["xeon-2s-ht"], 2, smt=True)
    argv = vm.argv(Boot("/usr/bin/qemu-system-x86_64", "/boot/vmlinuz", "/tmp/i.img", 7))
    cpu = argv[argv.index("-cpu") + 1].split(",")
    assert cpu[0] == "host" and {"host-cache-info=on", "migratable=off",
                                 "kvm-hint-dedicated=on"} <= set(cpu)
    assert argv[argv.index("-overcommit") + 1] == "cpu-pm=on"
    assert argv[argv.index("-accel") + 1] == "kvm"
    backend = argv[argv.index("-object") + 1].split(",")
    assert {"merge=off", "prealloc=on", "host-nodes=0", "policy=bind"} <= set(backend)
    assert argv[argv.index("-machine") + 1] == "q35,memory-backend=ram0"
    assert "-S" in argv and argv[argv.index("-smp") + 1] == vm.smp
    assert vm.tuning()["cpu_pm"] and vm.tuning()["host_cache_info"]


def test_shared_cpus_or_no_cpu_pm_drop_the_dedicated_settings(trees):
    _, _, vms = plans(trees["cloud-vm-adjacent"], 6, smt=False, dedicated=False)
    argv = vms[0].argv(Boot("q", "k", "i", 3))
    assert "-overcommit" not in argv and "kvm-hint-dedicated=on" not in argv[argv.index("-cpu") + 1]
    _, _, (vm,) = plans(trees["cloud-vm-adjacent"], 1, smt=True, cpu_pm=False)
    argv = vm.argv(Boot("q", "k", "i", 3))
    assert "-overcommit" not in argv and "kvm-hint-dedicated=on" in argv[argv.index("-cpu") + 1]


def test_tcg_hugepages_and_unbound_memory(trees):
    _, _, (vm,) = plans(trees["cloud-vm-adjacent"], 1, smt=True, accel="tcg", hugepages=True,
                        bind_memory=False)
    argv = vm.argv(Boot("q", "k", "i", 3))
    assert argv[argv.index("-cpu") + 1] == "max,vendor=GenuineIntel" and "-overcommit" not in argv
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi"
    backend = argv[argv.index("-object") + 1]
    assert backend.startswith("memory-backend-memfd,id=ram0,size=1024M,hugetlb=on,"
                              "hugetlbsize=2M") and "host-nodes" not in backend
    assert vm.tuning()["hugepages"] and not vm.tuning()["memory_bound"]


def test_uneven_cores_fall_back_to_single_thread_cores_with_a_note(trees):
    topo, _, (vm,) = plans(trees["offline-cpus"], 1, smt=True)  # core 6 has one CPU online
    assert vm.threads == 1 and vm.cores == len(vm.cpus) == 13
    assert any("different numbers of CPUs" in note for note in vm.notes)
    topo, _, (vm,) = plans(trees["hybrid-alder-lake"], 1, smt=True)
    assert vm.threads == 1 and any("different numbers" in note for note in vm.notes)


def test_apic_ids_follow_qemu_field_widths():
    assert apic_id(0, 9, 1, cores=10, threads=2) == (9 << 1) | 1
    assert apic_id(1, 0, 0, cores=10, threads=2) == 1 << 5  # 10 cores take 4 bits
    assert apic_id(1, 71, 1, cores=72, threads=2) == 399


@pytest.fixture(scope="module")
def big_epyc(tmp_path_factory) -> str:
    """2 sockets x 72 cores x 2 threads = 288 CPUs (a whole-machine VM at the q35 limit),
    written with the fixture writer."""
    machine = make_sysfs.build("big-2s-288", "2 x 72 cores x 2 threads",
                               [make_sysfs.Group(0, 0, 72), make_sysfs.Group(1, 1, 72)],
                               make_sysfs.ZEN4)
    return make_sysfs.write(machine, str(tmp_path_factory.mktemp("big")))


def test_more_than_254_apic_ids_get_x2apic_with_interrupt_remapping(big_epyc):
    _, _, (vm,) = plans(big_epyc, 1, smt=True)
    assert vm.vcpus == 288 and vm.max_apic_id == 399 and vm.x2apic
    argv = vm.argv(Boot("q", "k", "i", 3, ("/opt/env",)))
    assert argv[argv.index("-accel") + 1] == "kvm,kernel-irqchip=split"
    iommu = argv.index("intel-iommu,intremap=on,eim=on")
    assert iommu < argv.index("virtio-9p-pci,fsdev=fs0,mount_tag=scaler0")
    with pytest.raises(UsageError, match="x2APIC .* only sets up under KVM"):
        plans(big_epyc, 1, smt=True, accel="tcg")
    _, _, vms = plans(big_epyc, 2, smt=True)  # 144 vCPUs, ids up to 1<<7|... < 255
    assert not any(vm.x2apic for vm in vms)
    assert all("intel-iommu" not in " ".join(vm.argv(Boot("q", "k", "i", 3))) for vm in vms)


def test_more_vcpus_than_the_machine_takes_is_refused(big_epyc):
    with pytest.raises(UsageError, match=r"partition 0 has 288 CPUs .* at most 200 vCPUs: "
                                         r"use more instances"):
        plans(big_epyc, 1, smt=True, max_vcpus=200)
    _, _, (vm,) = plans(big_epyc, 1, smt=True)  # 288: q35's limit up to QEMU 8.0, allowed
    assert vm.vcpus == 288


def test_guest_partition_is_all_vcpus_and_guest_nodes(trees):
    topo, the_plan, _ = plans(trees["epyc-2s-nps4"], 3, smt=True)
    for part in the_plan.partitions:
        g = guest_partition(part.cpus, part.nodes, topo)
        assert g.cpus == tuple(range(len(part.cpus))) and g.threads == len(part.cpus)
        assert g.nodes == tuple(range(len(part.nodes)))
    assert guest_partition([4, 5], []).nodes == (0,)


# -- QEMU's own account of the plans ---------------------------------------------------------


def qemu_account(argv: list[str], qmp: socket.socket, path: str
                 ) -> tuple[list[dict], list[dict]]:
    """Start QEMU paused on the given argv, ask it for its vCPUs and memory backends, quit."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, pass_fds=(qmp.fileno(),))
    qmp.close()
    try:
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(60)
        client.connect(path)
        stream = client.makefile("rw")
        replies = []
        stream.readline()  # greeting
        for command in ("qmp_capabilities", "query-cpus-fast", "query-memdev", "quit"):
            stream.write(json.dumps({"execute": command}) + "\n")
            stream.flush()
            while True:
                message = json.loads(stream.readline())
                if "return" in message or "error" in message:
                    replies.append(message)
                    break
        proc.wait(30)
        assert all("return" in r for r in replies), replies
        return replies[1]["return"], replies[2]["return"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.skipif(QEMU is None, reason="QEMU not installed (apt-get install qemu-system-x86)")
@pytest.mark.parametrize("name, n, smt", [("epyc-2s-nps4", 1, True), ("xeon-2s-ht", 3, True),
                                          ("cloud-vm-adjacent", 1, True)])
def test_qemu_numbers_the_vcpus_as_planned(trees, tmp_path, name, n, smt):
    """vCPU k's (socket, core, thread, node) as QEMU reports them: a guest core holds the
    CPUs of one host core, a guest node the CPUs of its host node; each guest node's memory
    backend is preallocated, unmerged, of the planned size."""
    from scaler.targets.guestkernel import find_kernel

    try:
        kernel = find_kernel(None).path
    except UsageError as exc:
        pytest.skip(f"no kernel to hand QEMU: {exc}")
    topo, the_plan, vms = plans(trees[name], n, smt=smt, accel="tcg", bind_memory=False,
                                memory_mb=256)
    vm = max(vms, key=lambda v: len(v.nodes))  # the partition spanning most nodes
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 512)
    path = str(tmp_path / "qmp")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    vcpus, memdevs = qemu_account(vm.argv(Boot(QEMU, kernel, str(initrd), listener.fileno())),
                                  listener, path)
    host_core, node_of = core_of(topo), {cpu.id: cpu.node for cpu in topo.cpus}
    guest_core: dict[tuple[int, int], set] = {}
    guest_node: dict[int, set] = {}
    for v in vcpus:
        props, cpu = v["props"], vm.cpus[v["cpu-index"]]
        guest_core.setdefault((props["socket-id"], props["core-id"]), set()).add(host_core[cpu])
        guest_node.setdefault(props.get("node-id", 0), set()).add(node_of[cpu])
    assert len(vcpus) == len(vm.cpus)
    assert all(len(keys) == 1 for keys in guest_core.values())  # siblings stay siblings
    assert guest_node == {
        node.id: {node.host_node} for node in vm.nodes}
    by_id = {m["id"]: m for m in memdevs}
    for node in vm.nodes:
        dev = by_id[f"ram{node.id}"]
        assert dev["size"] == node.memory_mb << 20
        assert dev["merge"] is False and dev["prealloc"] is True


def test_argv_of_the_dry_run_and_of_a_start_are_one(trees):
    """VmTarget.start and the dry run both call VmPlan.argv: the same plan gives the same
    command line but for the start's own files (consistency, not correctness)."""
    _, _, (vm,) = plans(trees["cloud-vm-adjacent"], 1, smt=True)
    a = vm.argv(Boot("q", "k", "<initramfs>", "<fd>"))
    b = vm.argv(Boot("q", "k", "/tmp/vm0.img", 9))
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert diff == [("<initramfs>", "/tmp/vm0.img"),
                    ("socket,id=qmp,fd=<fd>,server=on,wait=off",
                     "socket,id=qmp,fd=9,server=on,wait=off")]


def test_each_share_is_a_read_only_9p_device_of_its_own(trees):
    _, _, (vm,) = plans(trees["cloud-vm-adjacent"], 1, smt=True)
    argv = vm.argv(Boot("q", "k", "i", 3, ("/opt/env", "/data/a,b")))
    fsdevs = [argv[k + 1] for k, a in enumerate(argv) if a == "-fsdev"]
    assert fsdevs == [
        "local,id=fs0,path=/opt/env,security_model=none,readonly=on,multidevs=remap",
        "local,id=fs1,path=/data/a,,b,security_model=none,readonly=on,multidevs=remap"]
    assert "virtio-9p-pci,fsdev=fs1,mount_tag=scaler1" in argv
    assert not any("path=/," in a for a in argv)  # never the host's whole root
