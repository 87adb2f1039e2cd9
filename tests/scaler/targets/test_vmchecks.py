"""What is refused or warned before and when a VM boots: memory per node, huge pages, and a
guest CPU without the host's ISA."""

from __future__ import annotations

import pytest

from affinity import plan, read_topology
from scaler.errors import UsageError
from scaler.targets.vmchecks import (
    check_hugepages,
    check_node_memory,
    default_memory_mb,
    isa_verdict,
)
from scaler.targets.vmplan import VmOptions, vm_plan
from tests.affinity.fixtures import make_sysfs

SPR = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
       "amx_bf16")


def test_vms_that_cannot_fit_their_node_are_refused():
    free = {0: 3 * 2**30, 1: 1 * 2**30}.get
    parts = [{"nodes": [0]}, {"nodes": [0]}, {"nodes": [1]}]
    check_node_memory(parts, 1024, free)  # 2 GiB on node 0, 1 GiB on node 1: fits
    with pytest.raises(UsageError, match=r"2 VM\(s\) of 2048 MiB bound to NUMA node\(s\) 0"):
        check_node_memory(parts, 2048, free)
    assert default_memory_mb(0.05) == 512 and default_memory_mb(0.75) % 128 == 0


def test_huge_pages_are_counted_per_host_node(tmp_path):
    root = make_sysfs.write_all(str(tmp_path), ["epyc-2s-nps4"])["epyc-2s-nps4"]
    topo = read_topology(root)
    parts = plan(topo, 3, smt=True).partitions
    vms = [vm_plan(topo, p.cpus, p.nodes, p.index, VmOptions(memory_mb=2048, hugepages=True))
           for p in parts]
    need: dict[int, int] = {}
    for vm in vms:
        for node in vm.nodes:
            need[node.host_node] = need.get(node.host_node, 0) + node.memory_mb // 2
    check_hugepages(vms, need.get)  # exactly enough
    short = dict(need)
    short[5] -= 1
    with pytest.raises(UsageError, match=rf"need {need[5]} free 2 MiB huge pages on NUMA node "
                                         rf"5 but it has {need[5] - 1}"):
        check_hugepages(vms, short.get)


def test_a_guest_without_the_hosts_isa_is_warned_and_refused_where_it_cannot_run():
    missing, warnings, refusal = isa_verdict(SPR, ("avx2", "avx512f"), "fp32", True, kvm=True)
    assert missing == ["avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                       "amx_bf16"] and refusal is None
    assert "not only virtualization" in warnings[0]
    _, _, refusal = isa_verdict(SPR, ("avx2", "avx512f"), "bf16", True, kvm=False)
    assert refusal and "neither avx512_bf16 nor amx_bf16" in refusal
    _, _, refusal = isa_verdict(SPR, ("avx2", "avx512f"), "int8", True, kvm=True)
    assert refusal and "avx512_vnni avx_vnni amx_int8" in refusal
    assert isa_verdict(SPR, ("avx2",), "int8", True, kvm=False)[2] is None  # emulated
    assert isa_verdict(SPR, ("avx2",), "bf16", False, kvm=True)[2] is None  # no inference
    assert isa_verdict(SPR, SPR, "bf16", True, kvm=True) == ([], [], None)
