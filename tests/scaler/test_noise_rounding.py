"""What the noise meters record, rounded as documented (3 decimals for seconds and the
CpuMeter's shares, 4 for the window probe's shares): hand-made /proc files with figures
whose next decimal is not 0, a hand clock, and the process's own CPU time made mostly
system time so that user and system time cannot be confused (pure)."""

from __future__ import annotations

import os

import pytest

from scaler import noise
from tests.scaler.test_noise_proc import Clock, Own, stat_line, write_pid, write_stat

hz_100 = pytest.mark.skipif(noise.HZ != 100, reason="the figures are written for USER_HZ 100")


@pytest.fixture
def proc(tmp_path):
    folder = tmp_path / "proc"
    folder.mkdir()
    (folder / "loadavg").write_text("0.00 0.00 0.00 1/2 3\n")
    return folder


@hz_100
def test_cpu_meter_rounds_foreign_and_steal_shares_to_three_decimals(proc):
    write_stat(proc, [stat_line("cpu", user=10000, steal=100), stat_line("cpu0")])
    meter = noise.CpuMeter(cpus=2, proc=str(proc), clock=Clock(1.0, 1.23456),
                           own_cpu_s=Own(0.0, 0.123456))
    with meter:  # 0.37 s user + 0.13 s stolen = 0.50 s busy
        write_stat(proc, [stat_line("cpu", user=10037, steal=113), stat_line("cpu0")])
    r = meter.result
    # capacity 2 x 0.23456 = 0.46912 CPU-s; foreign 0.50 - 0.123456 = 0.376544 s
    assert r["foreign_cpu_s"] == 0.377
    assert r["foreign_share"] == 0.803  # 0.376544 / 0.46912 = 0.80266
    assert r["steal_share"] == 0.277  # 0.13 / 0.46912 = 0.27711


@hz_100
def test_window_probe_rounds_its_shares_to_four_decimals_under_one_cpu_second(proc, tmp_path):
    # one CPU for 0.23456 s (less than one CPU-second of capacity): cpu0 busy 0.11 s user
    # + 0.02 s stolen; the worker used 0.02 s of it, the coordinator none: others 0.11 s
    write_stat(proc, [stat_line("cpu0", user=1000, steal=10)])
    write_pid(proc, 11, utime=100, stime=100)
    probe = noise.WindowProbe((0,), 0.05, proc=str(proc), cpufreq=str(tmp_path / "none"),
                              clock=Clock(10.0, 10.23456), own_cpu_s=Own(5.0, 5.0))
    probe.begin([11])
    write_stat(proc, [stat_line("cpu0", user=1011, steal=12)])
    write_pid(proc, 11, utime=102, stime=100)
    r = probe.end()
    assert r["window_s"] == 0.235
    assert r["others_cpu_share"] == 0.469  # 0.11 / 0.23456 = 0.46896
    assert r["workers_cpu_share"] == 0.0853  # 0.02 / 0.23456 = 0.085266
    assert r["steal_share"] == 0.0853
    assert r["resolution_share"] == 0.0853  # 2 jiffies over the window
    assert r["noisy"] is True


def burn_system_time(seconds: float) -> None:
    """Spend at least ``seconds`` of this process's CPU time in the kernel (bounded)."""
    start = os.times().system
    fd = os.open("/dev/zero", os.O_RDONLY)  # the kernel zero-fills each read: system time
    try:
        for _ in range(100_000):
            if os.times().system - start >= seconds:
                return
            os.read(fd, 1 << 22)
    finally:
        os.close(fd)
    pytest.skip("could not spend system time here")


def test_own_cpu_time_is_user_plus_system_time():
    burn_system_time(0.1)  # user - system would be 0.2 s or more off
    t = os.times()
    assert t.system >= 0.1
    assert noise.self_cpu_s() == pytest.approx(t.user + t.system, abs=0.05)
    assert noise._own_and_children_cpu_s() == pytest.approx(
        t.user + t.system + t.children_user + t.children_system, abs=0.05)
