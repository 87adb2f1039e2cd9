"""A placement's own options: the vm placement's as flags, settings and run.json keys."""

from __future__ import annotations

import pytest

from scaler import placements
from scaler.cli.runner import settings_for
from scaler.errors import UsageError
from scaler.placements.options import specs_of
from scaler.placements.vm import VmOptions
from scaler.settings import Settings


def test_the_vm_options_keep_their_flags_and_run_json_keys():
    got = {s.flag: s.record_key for s in specs_of(placements.get("vm"))}
    assert got == {"--vm-memory": "vm_memory_mb", "--vm-kernel": "vm_kernel",
                   "--accel": "vm_accel", "--vm-hugepages": "vm_hugepages"}
    requested = Settings().to_dict()  # defaults, recorded as before
    assert {k: requested[k] for k in got.values()} == {
        "vm_memory_mb": None, "vm_kernel": None, "vm_accel": "auto", "vm_hugepages": False}
    assert "placement_options" not in requested


def test_command_values_become_the_placements_options():
    s = settings_for("latency", engine="null", placement="vm", vm_memory="1.5G", accel="tcg",
                     vm_hugepages=True)
    assert s.options_of("vm") == VmOptions(memory_mb=1536, accel="tcg", hugepages=True)
    assert s.to_dict()["vm_memory_mb"] == 1536 and s.to_dict()["vm_accel"] == "tcg"
    assert settings_for("latency").options_of("vm") == VmOptions()  # nothing given
    assert settings_for("latency").options_of("pinned") is None  # declares none
    vm = placements.get("vm").configured(s)
    assert vm.chosen == s.options_of("vm") and placements.get("vm").chosen == VmOptions()


@pytest.mark.parametrize("given, message", [
    ({"accel": "xen"}, "unknown --accel 'xen': choose from auto, kvm, tcg"),
    ({"vm_memory": "12"}, "--vm-memory 12 is too small: a guest needs at least 128 MiB"),
])
def test_the_vm_placement_checks_its_own_options(given, message):
    with pytest.raises(UsageError) as caught:
        settings_for("latency", engine="null", **given)
    assert str(caught.value) == message
