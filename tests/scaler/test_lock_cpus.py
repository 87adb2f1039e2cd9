"""The CPUs a run locks (``lock.run_cpus``) on a hand-made machine whose layout the test
knows: 2 sockets x 4 cores x 2 threads, CPUs 0-3 on socket 0 and 4-7 on socket 1, CPU n and
n+8 siblings of one core. Pure: no worker, no lock taken."""

from __future__ import annotations

from scaler import lock
from scaler.settings import Settings
from scaler.simulate.machine import parse_machine

XEON = parse_machine("2s4c2t")
EVERY_CPU = frozenset(range(16))


def locked(**settings) -> frozenset[int]:
    return lock.run_cpus(Settings(**settings), XEON)


def test_one_core_instance_locks_one_cpu_and_with_smt_its_sibling_too():
    assert locked(placements=("pinned",), instances=(1,), cores_per_instance=1) == {0}
    assert locked(placements=("pinned",), instances=(1,), cores_per_instance=1,
                  smt=True) == {0, 8}


def test_an_oversubscribed_group_locks_each_core_once_not_every_cpu():
    # 3 instances of 3 cores on 8 cores: every core, one thread of each
    got = locked(placements=("pinned",), instances=(3,), cores_per_instance=3,
                 oversubscribe=True)
    assert got == frozenset(range(8))


def test_a_group_its_placement_refuses_locks_every_cpu():
    # the same group without --oversubscribe is refused when its turn comes: lock them all
    assert locked(placements=("pinned",), instances=(3,), cores_per_instance=3) == EVERY_CPU


def test_vms_of_fixed_size_lock_their_cores_in_each_socket():
    # two VMs of 3 cores: one in each socket, on its first 3 cores
    assert locked(placements=("vm",), instances=(2,), cores_per_instance=3) == {0, 1, 2, 4, 5, 6}


def test_groups_of_several_placements_and_counts_lock_the_union():
    # pinned N=1 and N=2 of 1 core each (CPUs 0; 0 and 4), vm N=1 and N=2 likewise
    got = locked(placements=("pinned", "vm"), instances=(1, 2), cores_per_instance=1)
    assert got == {0, 4}
