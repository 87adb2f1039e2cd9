"""The numa_maps read-back: parsed from the kernel's own file of this process, and from a
two-node excerpt as a two-socket machine writes it."""

from __future__ import annotations

import os

from affinity.numamaps import parse_numa_maps, read_numa_maps, share_on

TWO_NODES = """\
55d0c000 default file=/usr/bin/python3.11 mapped=20 N0=12 N1=8 kernelpagesize_kB=4
55d0e000 bind:1 heap anon=300 dirty=300 N0=6 N1=294 kernelpagesize_kB=4
7f000000 bind:1 anon=2 dirty=2 N1=2 kernelpagesize_kB=2048
7ffd0000 default stack anon=5 dirty=5 N0=5 kernelpagesize_kB=4
"""


def test_two_nodes_summed_per_node_with_page_sizes():
    got = parse_numa_maps(TWO_NODES)
    assert got["kb_by_node"] == {"0": (12 + 6 + 5) * 4, "1": (8 + 294) * 4 + 2 * 2048}
    assert got["anon_kb_by_node"] == {"0": 11 * 4, "1": 294 * 4 + 2 * 2048}
    assert abs(share_on(got, {1}) - (294 * 4 + 4096) / (305 * 4 + 4096)) < 1e-12
    assert share_on({"anon_kb_by_node": {}}, {0}) == 0.0


def test_this_process_reads_back_its_own_memory():
    got = read_numa_maps()
    if "error" in got:  # a kernel without NUMA support has no numa_maps
        assert "numa_maps" in got["error"]
        return
    nodes = {int(n[4:]) for n in os.listdir("/sys/devices/system/node")
             if n.startswith("node") and n[4:].isdigit()}
    assert got["anon_kb_by_node"] and sum(got["kb_by_node"].values()) > 1024
    assert {int(k) for k in got["kb_by_node"]} <= nodes


def test_an_unreadable_process_is_an_error_entry_not_an_exception():
    assert "error" in read_numa_maps(2**22 + 12345)
