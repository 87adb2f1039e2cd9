"""migrate_own_pages's answers from node lists the test writes, and the thread counts of
cores_and_sockets read against /sys by the test itself (pure: no worker process)."""

from __future__ import annotations

import os
import platform
import re
import sys

import pytest

from affinity import bind
from affinity.bind import migrate_own_pages

bind_module = sys.modules["affinity.bind"]  # affinity.bind is also the function

# node 1023: the last one a 1024-bit node mask holds; no machine has that many nodes, so the
# kernel refuses to move pages there (EINVAL; EPERM where a container denies the syscall)
NO_SUCH_NODE = 1023
ARCHES = ("x86_64", "aarch64", "ppc64le")  # the architectures bind.py knows the number of


def online(tmp_path, text: str) -> str:
    path = tmp_path / "online"
    path.write_text(text + "\n")
    return str(path)


def test_no_node_file_says_so_exactly(tmp_path):
    assert migrate_own_pages((0,), str(tmp_path / "absent")) == \
        "not moved (no NUMA nodes in sysfs)"
    assert migrate_own_pages((0,), online(tmp_path, "zero")) == \
        "not moved (no NUMA nodes in sysfs)"


def test_moving_pages_to_a_node_that_cannot_exist_is_refused_with_the_errno(tmp_path):
    got = migrate_own_pages((NO_SUCH_NODE,), online(tmp_path, f"0,{NO_SUCH_NODE}"))
    if platform.machine() not in ARCHES:
        assert got == f"not moved (no migrate_pages syscall number for {platform.machine()})"
        return
    assert re.fullmatch(r"not moved \(migrate_pages: E[A-Z]+\)", got), got


def test_moving_pages_from_a_node_that_holds_none_moves_nothing_and_says_from_where(tmp_path):
    # node 0 holds this process's memory on every machine here; a node that cannot exist
    # holds none of its pages: the kernel moves nothing and leaves nothing behind (0)
    got = migrate_own_pages((0,), online(tmp_path, f"0,{NO_SUCH_NODE}"))
    if platform.machine() not in ARCHES:
        assert got == f"not moved (no migrate_pages syscall number for {platform.machine()})"
        return
    if got == "not moved (migrate_pages: EPERM)":
        pytest.skip("a container denies migrate_pages here")
    assert got == f"moved from node(s) {NO_SUCH_NODE}"
    # several other nodes, listed as a CPU list is
    got = migrate_own_pages((0,), online(tmp_path, f"0-2,{NO_SUCH_NODE}"))
    assert got == f"moved from node(s) 1-2,{NO_SUCH_NODE}"


def test_an_unbound_process_moves_no_pages(restored_affinity):
    got = bind(None, threads=1)
    assert not got.memory_bound
    assert got.memory_migrated == ""


def test_cores_and_sockets_reads_the_real_sys_by_default():
    cpus = sorted(os.sched_getaffinity(0))
    cores, sockets = set(), set()
    for cpu in cpus:  # read here, not through bind.py
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id") as f:
                package = int(f.read())
            with open(f"{topo}/core_id") as f:
                core = int(f.read())
        except (OSError, ValueError):
            pytest.skip("this machine's /sys has no CPU topology")
        cores.add((package, core))
        sockets.add(package)
    assert bind_module.cores_and_sockets(cpus) == (len(cores), len(sockets))


def test_an_unreadable_cpu_is_a_socket_of_its_own_beside_socket_zero(tmp_path):
    # CPU 0 in package 0; CPU 1's topology cannot be read: two sockets, two cores
    topo = tmp_path / "devices/system/cpu/cpu0/topology"
    topo.mkdir(parents=True)
    (topo / "physical_package_id").write_text("0\n")
    (topo / "core_id").write_text("0\n")
    assert bind_module.cores_and_sockets([0, 1], str(tmp_path)) == (2, 2)
