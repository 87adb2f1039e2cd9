"""The model terms of issue 15 behave as their docstrings say: the remote-memory term, the
sync cost's thread-count law and the serial part at its CPU share, and K through layouts.

Noise-free: every figure is the model's closed form (``closed_form_ips``, the mean the
closed-loop kernel converges to, checked against the kernel in ``test_des``) or a feature
of the kernel, compared with a value worked out by hand from the docstrings. These are the
model's internal laws, tested on machines this host is not; they prove the code does what
the model says, not that the model is right (``test_validation`` compares it with runs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaler.errors import UsageError
from scaler.simulate import rates
from scaler.simulate.layout import build_layout, plan_layout
from scaler.simulate.machine import parse_machine
from scaler.simulate.model import closed_form_ips, static_features
from tests.scaler.simulate.conftest import make_model

XEON = parse_machine("2s28c2t")


def values(**changes: float) -> dict[str, float]:
    return {**make_model().values, **changes}


def remote_share(layout) -> list[float]:
    return [round(float(r), 12) for r in static_features(layout)[3]]


# -- fixed-size instances through the layouts ------------------------------------------------

def test_cores_per_instance_passes_through_the_layouts():
    vm = plan_layout(XEON, "vm", 8, smt=True, cores_per_instance=6)
    assert [p["cores"] for p in vm.partitions] == [6] * 8
    assert all(len(p["cpus"]) == 12 and p["threads"] == 12 for p in vm.partitions)
    assert all(len(p["nodes"]) == 1 and p["memory_nodes"] == p["nodes"] for p in vm.partitions)
    assert sorted(p["nodes"][0] for p in vm.partitions) == [0] * 4 + [1] * 4  # NUMA-local
    shared = plan_layout(XEON, "shared", 8, smt=True, cores_per_instance=6)
    assert all(p["threads"] == 112 and p["memory_nodes"] is None for p in shared.partitions)
    one = plan_layout(parse_machine("1s2c1t"), "pinned", 1, cores_per_instance=1)
    assert one.partitions[0]["cores"] == 1  # N=1 is no longer the whole machine


def test_fixed_size_beyond_the_cores_is_refused_unless_asked():
    with pytest.raises(UsageError, match="--oversubscribe"):
        plan_layout(XEON, "vm", 10, smt=True, cores_per_instance=6)
    crowded = plan_layout(XEON, "vm", 10, smt=True, cores_per_instance=6, oversubscribe=True)
    assert crowded.oversubscribed and crowded.oversubscription == 2.0
    plan_layout(XEON, "shared", 10, cores_per_instance=6)  # shared ignores K: never refused


def test_simulated_groups_record_k(tmp_path):
    from scaler.simulate.sweep import scaling_groups

    groups = scaling_groups(make_model(), XEON, ("shared", "vm"), (1, 2), smt=True,
                            queries=2_000, cores_per_instance=6)
    vm = [g for g in groups if g["placement"] == "vm"]
    assert [g["per_instance"][0]["cores"] for g in vm] == [6, 6]
    assert [g.get("cores_per_instance") for g in groups] == [None, None, 6, 6]
    assert all(i["threads"] == 12 for g in vm for i in g["per_instance"])


# -- remote memory ---------------------------------------------------------------------------

def test_remote_share_follows_where_threads_and_memory_are():
    assert remote_share(plan_layout(XEON, "shared", 2)) == [0.5, 0.5]  # 1 - (1/2² + 1/2²)
    eight = parse_machine("2s32c2t4n")  # 8 nodes
    assert remote_share(plan_layout(eight, "shared", 1)) == [1 - 1 / 8]
    assert remote_share(plan_layout(XEON, "vm", 8, smt=True, cores_per_instance=6)) == [0.0] * 8
    assert remote_share(plan_layout(XEON, "pinned", 2)) == [0.0, 0.0]  # a socket each
    # a straddler bound to both its nodes: its memory is split like its threads
    straddler = plan_layout(XEON, "pinned", 3)
    for part, r in zip(straddler.partitions, remote_share(straddler)):
        counts = [sum(1 for c in part["cpus"] if c % 56 < 28) / len(part["cpus"])]
        counts.append(1 - counts[0])
        assert r == pytest.approx(1 - sum(w * w for w in counts), abs=1e-12)
    # CPUs of node 0, memory bound to node 1 (numactl --cpunodebind=0 --membind=1)
    remote = build_layout(XEON, "pinned", [(list(range(28)), 28, [1])], 1.0)
    assert remote_share(remote) == [1.0]


def test_recorded_runs_bring_their_memory_binding():
    """What a user's calibration runs record decides the remote share: a shared worker run
    under ``numactl --cpunodebind=0 --membind=1`` inherits the policy (``bind:1``), one under
    ``--membind=0`` is local, one without numactl is unbound; a pinned worker that bound its
    partition's node is local."""
    from dataclasses import replace

    from scaler.simulate.layout import recorded_layout

    node0 = replace(XEON, usable_cpus=tuple(range(28)))  # the cpuset numactl gave the run

    def shared(policy: str, topo=node0) -> dict:
        cpus = list(topo.usable_cpus)
        return {"placement": "shared", "per_instance": [{
            "partition": None, "threads": len(cpus),
            "binding": {"cpus": cpus, "nodes": [], "memory_bound": False,
                        "memory_policy": policy}}]}

    assert remote_share(recorded_layout(node0, shared("bind:1"))) == [1.0]
    assert remote_share(recorded_layout(node0, shared("bind:0"))) == [0.0]
    assert remote_share(recorded_layout(node0, shared("default"))) == [0.0]  # one node's CPUs
    assert remote_share(recorded_layout(XEON, shared("default", XEON))) == [0.5]
    pinned = {"placement": "pinned", "per_instance": [{
        "partition": {"cpus": list(range(28)), "nodes": [0]}, "threads": 28,
        "binding": {"cpus": list(range(28)), "nodes": [0], "memory_bound": True,
                    "memory_policy": "bind:0"}}]}
    assert remote_share(recorded_layout(XEON, pinned)) == [0.0]


def test_remote_memory_lowers_shared_on_2s28c2t_and_leaves_pinned_unchanged():
    plain, numa = values(numa_penalty=0.0), values(numa_penalty=0.3)
    for n in range(1, 9):
        shared = plan_layout(XEON, "shared", n, smt=True)
        assert closed_form_ips(shared, numa) < closed_form_ips(shared, plain) * 0.999, n
        for layout in (plan_layout(XEON, "pinned", n, smt=True, cores_per_instance=6),
                       plan_layout(XEON, "vm", n, smt=True, cores_per_instance=6)):
            assert closed_form_ips(layout, numa) == closed_form_ips(layout, plain), n
    for n in (2, 4, 8):  # balanced partitions inside one node each
        pinned = plan_layout(XEON, "pinned", n)
        assert closed_form_ips(pinned, numa) == closed_form_ips(pinned, plain), n
    one_node = plan_layout(parse_machine("1s8c2t"), "shared", 3)
    assert closed_form_ips(one_node, numa) == closed_form_ips(one_node, plain)


def test_remote_memory_term_is_penalty_times_remote_share_times_cross_load():
    """With no serial part the useful compute is the cores' worth: N shared instances
    keep all 56 cores busy, half their accesses remote, so the cross-node load is
    0.5 x 56 / (0.5 x 56) = 1 and the term is exactly 1 + p x 0.5."""
    for n in (1, 2, 5):
        shared = plan_layout(XEON, "shared", n, smt=True)
        base = values(serial_fraction=0.0, sync_cost=0.0, slice_cost=0.0, numa_penalty=0.0)
        ratio = closed_form_ips(shared, base) / closed_form_ips(shared, {**base,
                                                                         "numa_penalty": 0.3})
        assert ratio == pytest.approx(1.15, rel=1e-12), n
    # one 28-core instance fully remote, the machine otherwise idle: load 28 / 28 = 1 ...
    remote = build_layout(XEON, "pinned", [(list(range(28)), 28, [1])], 1.0)
    base = values(serial_fraction=0.0, memory_contention=0.0, numa_penalty=0.0)
    ratio = closed_form_ips(remote, base) / closed_form_ips(remote, {**base, "numa_penalty": 0.3})
    assert ratio == pytest.approx(1.3, rel=1e-12)
    # ... and a 7-core one loads the links a quarter as much
    small = build_layout(XEON, "pinned", [(list(range(7)), 7, [1])], 1.0)
    ratio = closed_form_ips(small, base) / closed_form_ips(small, {**base, "numa_penalty": 0.3})
    assert ratio == pytest.approx(1 + 0.3 * 7 / 28, rel=1e-12)


# -- the sync cost's thread-count law --------------------------------------------------------

def test_sync_growth_is_the_harmonic_law():
    assert rates.harmonic(1) == 1.0 and rates.harmonic(3) == pytest.approx(11 / 6)
    assert rates.sync_growth(2.0, 1.0) == 1.0 and rates.sync_growth(1.0, 1.0) == 1.0
    assert rates.sync_growth(3.0, 1.0) == pytest.approx(1.5)
    assert rates.sync_growth(112.0, 1.0) == pytest.approx(sum(1 / k for k in range(1, 112)))
    assert rates.sync_growth(112.0, 0.0) == 1.0
    assert rates.sync_growth(112.0, 0.5) == pytest.approx(math.sqrt(rates.harmonic(111)))


@pytest.mark.parametrize("machine,threads", [("1s2c1t", 2), ("1s4c1t", 4), ("1s8c1t", 8)])
def test_sync_cost_grows_with_the_thread_count_only_beyond_two(machine, threads):
    """Two shared instances of t threads each on t CPUs: each thread waits half the time,
    so the sync part multiplies the query time by 1 + c x H(t - 1) x 0.5 (no serial part,
    no other cost)."""
    layout = plan_layout(parse_machine(machine), "shared", 2)
    base = values(serial_fraction=0.0, slice_cost=0.0, memory_contention=0.0, sync_cost=0.0)
    for growth in (0.0, 1.0):
        costly = {**base, "sync_cost": 0.2, "sync_growth": growth}
        ratio = closed_form_ips(layout, base) / closed_form_ips(layout, costly)
        expected = 1 + 0.2 * rates.harmonic(threads - 1) ** growth * 0.5
        assert ratio == pytest.approx(expected, rel=1e-12)
        if threads == 2:  # what a 2-thread calibration measures carries over unchanged
            assert ratio == pytest.approx(1.1, rel=1e-12)


# -- the serial part at its CPU share ---------------------------------------------------------

def test_serial_sharing_zero_and_spin_one_is_the_previous_model():
    """w = 0 and spin = 1: every thread always runnable, the serial part at min(1, e) of a
    core. Two shared 4-thread instances on 4 CPUs get 2 cores' worth each: a query takes
    s/1 + (1 - s)/2 of t1, times the share cost 1 + (slice + sync x H(3)) x 1/2."""
    v = values(serial_sharing=0.0, spin=1.0, memory_contention=0.0)
    layout = plan_layout(parse_machine("1s4c1t"), "shared", 2)
    s, t1 = v["serial_fraction"], v["t1_ms"]
    per_query = t1 * (s + (1 - s) / 2) * (1 + (v["slice_cost"] + v["sync_cost"] * 11 / 6) / 2)
    assert closed_form_ips(layout, v) == pytest.approx(2 * 1000 / per_query, rel=1e-12)


def test_the_serial_part_is_slowed_by_its_cpu_share():
    """spin = 1 (every waiting thread spins): two shared 2-thread instances on 2 CPUs; the
    serial thread shares the pool with its own spinning sibling and the other instance's 2
    threads, 2 CPUs for 4 threads, so a query takes s / (1/2) + (1 - s) / 1 of t1 instead of
    s + (1 - s)."""
    layout = plan_layout(parse_machine("1s2c1t"), "shared", 2)
    v = values(spin=1.0, serial_sharing=1.0, sync_cost=0.0, slice_cost=0.0,
               memory_contention=0.0)
    s = v["serial_fraction"]
    assert closed_form_ips(layout, v) == pytest.approx(
        2 * 1000 / (v["t1_ms"] * (2 * s + 1 - s)), rel=1e-12)
    assert closed_form_ips(layout, {**v, "serial_sharing": 0.0}) == pytest.approx(
        2 * 1000 / v["t1_ms"], rel=1e-12)


def test_the_new_laws_leave_instances_without_others_alone():
    new, old = values(), values(serial_sharing=0.0, spin=1.0)
    for layout in (plan_layout(XEON, "shared", 1, smt=True),  # alone: nothing to share with
                   plan_layout(XEON, "vm", 8, smt=True, cores_per_instance=6),
                   plan_layout(parse_machine("1s2c1t"), "pinned", 5)):  # single-threaded
        assert closed_form_ips(layout, new) == pytest.approx(closed_form_ips(layout, old),
                                                             rel=1e-12)


@pytest.mark.parametrize("machine,n", [("1s2c1t", 2), ("1s2c1t", 4), ("2s28c2t", 8)])
def test_more_spinning_never_helps(machine, n):
    layout = plan_layout(parse_machine(machine), "shared", n)
    ips = [closed_form_ips(layout, values(spin=x)) for x in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(b < a for a, b in zip(ips, ips[1:])), ips


def test_a_fully_serial_instance_takes_a_free_cpu_of_its_pool():
    """s = 1, spin = 0: each of two 2-thread shared instances on 2 CPUs runs one thread at a
    time and the other sleeps; the scheduler gives each its own CPU, so both run at one
    core's speed (the activity fixed point settles at half the threads runnable)."""
    layout = plan_layout(parse_machine("1s2c1t"), "shared", 2)
    v = values(serial_fraction=1.0, serial_sharing=1.0, spin=0.0, sync_cost=0.0,
               slice_cost=0.0, memory_contention=0.0)
    assert closed_form_ips(layout, v) == pytest.approx(2 * 1000 / v["t1_ms"], rel=1e-9)
    n = layout.instances
    e, waiting, mem, serial, remote = (np.zeros(n) for _ in range(5))
    rates.features(layout.ptr, layout.cpus, layout.threads, layout.mptr, layout.mnodes,
                 np.ones(n, np.bool_), np.full(n, 0.5), layout.cpu_core, layout.core_node,
                 layout.node_size, 0.0, 0.0, layout.n_cores, e, waiting, mem, serial,
                 remote)
    assert list(serial) == [1.0, 1.0]  # 2 CPUs for itself and one other runnable thread


# -- the split of a ratio among the terms ----------------------------------------------------

def test_explain_splits_the_log_ratio_exactly_among_the_terms():
    from scaler.simulate.explain import explain_ratio, lines

    model = make_model(numa_penalty=0.3, smt_gain=0.2).with_given({"vm_slowdown": 0.05})
    x = explain_ratio(model, XEON, "vm", "shared", tuple(range(1, 9)), 6, smt=True)
    assert x["ratio"]["1"] < 1.0  # one 12-vCPU VM is slower than the whole machine
    assert x["ratio_at"] == pytest.approx(x["ratio"]["8"], rel=1e-12)
    logs = sum(t["log_share"] for t in x["terms"])
    assert logs == pytest.approx(math.log(x["ratio_at"] / x["ratio_without_terms"]), abs=1e-12)
    names = {t["name"] for t in x["terms"]}
    assert {"numa_penalty", "sync_cost", "sync_growth", "serial_sharing", "vm_slowdown",
            "smt_gain"} <= names and "vm_overhead_ms" not in names  # neutral: left out
    by = {t["name"]: t for t in x["terms"]}
    assert by["numa_penalty"]["factor"] > 1 and by["vm_slowdown"]["factor"] < 1
    assert by["vm_slowdown"]["source"] == "given"
    text = "\n".join(lines(x))
    assert "(slower)" in text and "numa_penalty" in text and "2.04x" in text
    # with every term neutral but one, its factor is the whole change
    alone = make_model(sync_cost=0.0, slice_cost=0.0, memory_contention=0.0,
                       serial_sharing=0.0, sync_growth=0.0, numa_penalty=0.3)
    y = explain_ratio(alone, XEON, "vm", "shared", (1, 8), 6, smt=True)
    assert [t["name"] for t in y["terms"]] == ["numa_penalty"]
    assert y["terms"][0]["factor"] == pytest.approx(y["ratio_at"] / y["ratio_without_terms"])
