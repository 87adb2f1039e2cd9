"""KVM or TCG, and why: each reason of ``detect_accel`` produced for real where this machine
can (a missing device, a file that is no KVM device, a user without permission, a
KVM_CREATE_VM the kernel refuses), ``--accel kvm`` refused in one line, and QEMU asked
for its facts over QMP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from scaler.errors import UsageError
from scaler.targets.accel import (
    detect_accel,
    parse_accel_help,
    parse_qmp_facts,
    probe_qemu,
    resolve_accel,
)
from tests.scaler.helpers import ROOT, scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

QEMU = shutil.which("qemu-system-x86_64")
HAS_KVM_DEVICE = os.path.exists("/dev/kvm")


@pytest.fixture
def vmx_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu vmx avx2\n")
    return str(path)


def test_no_vmx_or_svm_flag_is_tcg(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 hypervisor\n")
    accel = detect_accel(str(path))
    assert accel.name == "tcg" and accel.emulated and "no vmx/svm flag" in accel.reason


def test_a_missing_device_is_tcg(vmx_cpuinfo, tmp_path):
    accel = detect_accel(vmx_cpuinfo, str(tmp_path / "kvm"))
    assert accel.emulated and "does not exist" in accel.reason


def test_a_file_that_is_no_kvm_device_does_not_answer(vmx_cpuinfo, tmp_path):
    fake = tmp_path / "kvm"
    fake.write_bytes(b"")
    accel = detect_accel(vmx_cpuinfo, str(fake))
    assert accel.emulated and "does not answer KVM_GET_API_VERSION" in accel.reason


@pytest.mark.skipif(not HAS_KVM_DEVICE or os.geteuid() != 0,
                    reason="needs /dev/kvm and root to drop to an unprivileged user")
def test_no_permission_on_the_device_says_so():
    if os.stat("/dev/kvm").st_mode & 0o006:
        pytest.skip("/dev/kvm is open to everyone here")
    with tempfile.NamedTemporaryFile("w", dir="/tmp", suffix=".cpuinfo") as cpuinfo:
        cpuinfo.write("flags\t\t: fpu vmx avx2\n")
        cpuinfo.flush()
        os.chmod(cpuinfo.name, 0o644)  # readable by the user the child becomes
        code = ("import os, json; from scaler.targets.accel import detect_accel; "  # then drop
                "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
                f"a = detect_accel({cpuinfo.name!r}); print(json.dumps([a.name, a.reason]))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "tcg" in done.stdout and "no permission to open /dev/kvm" in done.stdout


@pytest.mark.skipif(not HAS_KVM_DEVICE, reason="needs /dev/kvm")
def test_a_vm_the_kernel_refuses_to_create_is_tcg(vmx_cpuinfo):
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as exc:
        pytest.skip(f"/dev/kvm: {exc.strerror}")
    os.close(fd)
    # an unknown VM type: the kernel answers the API version, then refuses the VM
    accel = detect_accel(vmx_cpuinfo, vm_type=0xDEAD)
    assert accel.emulated and accel.reason.startswith("KVM_CREATE_VM on /dev/kvm failed: ")


@pytest.mark.skipif(not HAS_KVM_DEVICE or QEMU is None, reason="needs /dev/kvm and QEMU")
def test_kvm_where_every_check_passes_reports_its_caps(vmx_cpuinfo):
    accel = detect_accel(vmx_cpuinfo, qemu=QEMU)
    if accel.emulated:
        pytest.skip(f"KVM unusable here: {accel.reason}")
    assert accel.name == "kvm" and accel.caps["max_vcpus"] >= 1
    assert set(accel.caps) == {"disable_exits", "max_vcpus", "recommended_vcpus", "x2apic_api"}


def test_qemu_without_kvm_is_read_from_its_accel_list():
    text = "Accelerators supported in QEMU binary:\ntcg\n"
    assert parse_accel_help(text) == {"tcg"}
    assert parse_accel_help(text + "kvm\n") == {"tcg", "kvm"}


def test_resolve_accel():
    assert resolve_accel("tcg").name == "tcg"
    with pytest.raises(UsageError, match="unknown --accel 'xen'"):
        resolve_accel("xen")
    found = detect_accel()
    if found.emulated:
        with pytest.raises(UsageError, match=r"^--accel kvm: KVM cannot be used here: "):
            resolve_accel("kvm")
    assert resolve_accel("auto").name == found.name


def test_accel_kvm_without_kvm_is_a_one_line_usage_error(tmp_path):
    found = detect_accel(qemu=QEMU) if QEMU else detect_accel()
    if not found.emulated:
        pytest.skip("this machine has KVM")
    done = scaler_cmd("latency", "--placement", "vm", "--accel", "kvm", "--engine", "null",
                      "--out", str(tmp_path), timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == f"scaler: error: --accel kvm: KVM cannot be used here: {found.reason}"
    assert not list(tmp_path.iterdir())  # refused before any run folder


def test_unknown_accel_is_refused_for_any_placement(tmp_path):
    done = scaler_cmd("latency", "--accel", "hvf", "--engine", "null", "--out", str(tmp_path),
                      timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "scaler: error: unknown --accel 'hvf': choose from auto, " \
                                  "kvm, tcg"


@pytest.mark.skipif(QEMU is None, reason="QEMU not installed")
def test_qemu_tells_its_version_limits_and_guest_cpu():
    facts = probe_qemu(QEMU, "tcg")
    version = subprocess.run([QEMU, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    assert f"version {facts.version}" in version
    assert facts.q35_max_cpus >= 255 and facts.cpu_model == "max"
    assert "avx512_bf16" not in facts.guest_isa  # TCG does not emulate AVX-512


def test_a_qemu_that_cannot_start_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot run"):
        probe_qemu(str(tmp_path / "no-qemu"), "tcg")
    # QEMU failing to open KVM cannot happen on demand here: a stand-in that fails as QEMU
    # does (its last stderr line, exit 1) checks that its words reach the user
    stand_in = tmp_path / "qemu-system-x86_64"
    stand_in.write_text("#!/bin/sh\necho 'Could not access KVM kernel module: Permission "
                        "denied' >&2\necho 'qemu-system-x86_64: failed to initialize kvm: "
                        "Permission denied' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    with pytest.raises(UsageError, match=r"cannot start with -accel kvm: qemu-system-x86_64: "
                                         r"failed to initialize kvm: Permission denied$"):
        probe_qemu(str(stand_in), "kvm")


def test_qmp_facts_parse_the_machine_limit_and_features():
    replies = [{"return": {"qemu": {"major": 9, "minor": 2, "micro": 0}}},
               {"return": [{"name": "pc-q35-9.2", "alias": "q35", "cpu-max": 4096},
                           {"name": "pc-i440fx-9.2", "cpu-max": 255}]},
               {"return": {"model": {"name": "host", "props": {
                   "avx512-bf16": True, "amx-int8": True, "avx2": True, "avx512f": False}}}}]
    facts = parse_qmp_facts(replies, "host")
    assert facts.version == "9.2.0" and facts.q35_max_cpus == 4096
    assert facts.guest_isa == ("avx2", "avx512_bf16", "amx_int8")
    assert parse_qmp_facts([{"return": {}}, {"error": {}}, {"error": {}}], "max").guest_isa == ()
