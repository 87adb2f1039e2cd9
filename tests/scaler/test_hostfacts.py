"""Host facts read from trees laid out like / (written here as a Xeon with intel_pstate and
an EPYC with acpi-cpufreq would show them), and from this machine."""

from __future__ import annotations

import os

from scaler.hostfacts import bracketed, cpu_times, host_facts, parse_cpu_line


def write(root, files: dict[str, str]) -> str:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


def test_a_xeon_with_intel_pstate(tmp_path):
    files = {f"sys/devices/system/cpu/cpu{k}/cpufreq/scaling_governor": "performance\n"
             for k in range(4)}
    files.update({
        "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor": "powersave\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_driver": "intel_pstate\n",
        "sys/devices/system/cpu/intel_pstate/no_turbo": "1\n",
        "sys/kernel/mm/transparent_hugepage/enabled": "[always] madvise never\n",
        "sys/kernel/mm/transparent_hugepage/defrag": "always defer [madvise] never\n",
        "sys/kernel/mm/ksm/run": "1\n",
        "sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages": "512\n",
        "sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages": "500\n",
        "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu vmx avx2\n",
        "proc/stat": "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n",
    })
    facts = host_facts(write(tmp_path, files))
    assert facts["governors"] == {"performance": "0-2", "powersave": "3"}
    assert facts["cpufreq_driver"] == "intel_pstate" and facts["turbo"] is False
    assert facts["thp"] == {"enabled": "always", "defrag": "madvise"}
    assert facts["ksm_running"] is True and facts["hypervisor"] is False
    assert facts["virtualization"] == ["vmx"]
    assert facts["hugepages_2m"] == {"1": {"total": 512, "free": 500}}
    assert facts["steal_share_since_boot"] == 0.0


def test_a_nested_guest_with_acpi_boost_and_steal(tmp_path):
    root = write(tmp_path, {
        "sys/devices/system/cpu/cpufreq/boost": "1\n",
        "proc/cpuinfo": "flags\t\t: fpu avx2 hypervisor\n",
        "proc/stat": "cpu  600 0 100 200 0 0 0 100 40 0\n",
    })
    facts = host_facts(root)
    assert facts["turbo"] is True and facts["hypervisor"] is True
    assert facts["governors"] is None and facts["thp"] == {"enabled": None, "defrag": None}
    assert facts["steal_share_since_boot"] == 0.1  # 100 of 1000 ticks (guest not added twice)


def test_cpu_lines_and_steal_share():
    a = parse_cpu_line("cpu  10 0 10 80 0 0 0 0 0 0")
    b = parse_cpu_line("cpu  20 0 20 150 0 0 0 10 0 0")
    assert a and b and b.steal_share_since(a) == 0.1
    assert parse_cpu_line("cpu0 1 2 3 4 5 6 7 8") is None and parse_cpu_line("junk") is None
    assert a.steal_share_since(a) is None
    assert bracketed("always [madvise] never") == "madvise" and bracketed("never") == "never"


def test_this_machine():
    facts = host_facts()
    times = cpu_times()
    assert times is not None and times.total > 0
    assert isinstance(facts["hypervisor"], bool)
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    if os.path.exists(thp):
        assert facts["thp"]["enabled"] in ("always", "madvise", "never")


def test_boot_id_is_this_boots():
    from scaler.hostfacts import boot_id

    with open("/proc/sys/kernel/random/boot_id") as f:
        assert boot_id() == f.read().strip() != ""
