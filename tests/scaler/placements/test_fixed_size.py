"""Fixed-size instances (``--cores-per-instance K``): pinned and vm plan K cores each, shared
keeps the whole machine, and N x K beyond the usable cores is refused before any worker or
VM starts unless oversubscription is asked for. Plans of fixture machines (sysfs trees) and
of this one; the VM check runs QEMU's own preparation, nothing boots."""

from __future__ import annotations

import shutil

import pytest

from affinity import read_topology
from scaler import placements
from scaler.errors import UsageError
from scaler.placements.vm import VmOptions
from scaler.settings import Settings
from tests.affinity.fixtures.make_sysfs import machines, write


@pytest.fixture(scope="module")
def xeon(tmp_path_factory):
    return read_topology(str(write(machines()["xeon-2s-ht"], str(tmp_path_factory.mktemp("x")))))


def test_pinned_and_vm_plan_k_cores_each_and_record_it(xeon):
    cores = len(xeon.usable_cores)
    for name in ("pinned", "vm"):
        plan = placements.get(name).plan(xeon, 3, smt=True, cores_per_instance=2)
        assert plan.layout["cores_per_instance"] == 2 and not plan.layout["oversubscribed"]
        assert [len(i.cpus) for i in plan.instances] == [4, 4, 4]  # 2 cores + siblings
        assert all(len(i.nodes) == 1 for i in plan.instances)  # NUMA-local
        assert f"{cores - 6} of {cores} usable cores stay idle" in " ".join(plan.warnings)
        balanced = placements.get(name).plan(xeon, 3)
        assert balanced.layout["cores_per_instance"] is None
    shared = placements.get("shared").plan(xeon, 3, cores_per_instance=2)
    assert "cores_per_instance" not in shared.layout
    assert all(i.cpus is None and i.threads == len(xeon.usable_cpus) for i in shared.instances)


def test_more_than_the_cores_is_refused_unless_asked(xeon):
    cores = len(xeon.usable_cores)
    n = cores // 2 + 1
    plan = placements.get("pinned").plan(xeon, n, cores_per_instance=2)
    with pytest.raises(UsageError, match=rf"{n} instances x 2 core\(s\) need {2 * n} physical "
                                         rf"cores but only {cores} are usable: pass "
                                         "--oversubscribe"):
        placements.check_oversubscription(plan, allowed=False)
    placements.check_oversubscription(plan, allowed=True)
    balanced = placements.get("pinned").plan(xeon, 2 * cores)  # balanced plans as before
    placements.check_oversubscription(balanced, allowed=False)
    shared = placements.get("shared").plan(xeon, 2 * cores, cores_per_instance=2)
    placements.check_oversubscription(shared, allowed=False)


def test_preflight_refuses_before_anything_starts(xeon):
    from scaler.engines import EngineSpec

    spec = EngineSpec(engine="null", precision="fp32", model="resnet50", batch=1)
    wide = Settings(placements=("pinned",), instances=(1, 2, 99), cores_per_instance=1)
    with pytest.raises(UsageError, match="99 instances x 1 core"):
        placements.get("pinned").preflight(wide, xeon, spec)
    placements.get("pinned").preflight(Settings(instances=(1, 99), cores_per_instance=1,
                                                oversubscribe=True), xeon, spec)
    placements.get("shared").preflight(wide, xeon, spec)  # shared ignores K
    assert placements.get("shared").notes(wide)  # and says so


def test_vm_preflight_plans_the_fixed_size_vms():
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU not installed")
    from scaler import scenarios

    here = read_topology()
    cores = len(here.usable_cores)
    ok = Settings(engine="null", placements=("vm",), instances=(1, cores),
                  cores_per_instance=1, placement_options={"vm": VmOptions(accel="tcg")})
    try:
        scenarios.prepare(ok)
    except UsageError as exc:
        if "kernel" in str(exc):
            pytest.skip(f"no bootable host kernel: {exc}")
        raise
    too_many = Settings(engine="null", placements=("vm",), instances=(cores + 1,),
                        cores_per_instance=1, placement_options={"vm": VmOptions(accel="tcg")})
    with pytest.raises(UsageError, match="--oversubscribe"):
        scenarios.prepare(too_many)
