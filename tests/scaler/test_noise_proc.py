"""The noise meter's arithmetic on ``/proc`` files written by the test.

Each test writes ``stat``, ``PID/stat``, ``loadavg`` and cpufreq files whose counters it
chose, and hands the meter a clock that reads the window it chose, so every share the meter
reports is known by hand: (busy jiffies - workers' - coordinator's) / HZ / (window x CPUs).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from scaler import noise

HZ = noise.HZ


def j(seconds: float) -> int:
    """CPU seconds as jiffies."""
    return round(seconds * HZ)


def stat_line(name, user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0,
              guest=0, guest_nice=0, fields=10):
    values = [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice]
    return " ".join([name, *map(str, values[:fields])])


def write_stat(proc, lines):
    (proc / "stat").write_text("\n".join([*lines, "intr 1 2 3", "ctxt 99"]) + "\n")


def write_pid(proc, pid, utime, stime, comm="scaler worker"):
    (proc / str(pid)).mkdir(exist_ok=True)
    rest = ["S", "1", "1", "1", "0", "-1", "4194560", "0", "0", "0", "0", str(utime),
            str(stime), "0", "0", "20", "0", "1", "0", "100"]
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(rest)}\n")


@pytest.fixture
def proc(tmp_path):
    folder = tmp_path / "proc"
    folder.mkdir()
    (folder / "loadavg").write_text("0.50 1.25 2.00 1/234 5678\n")
    return folder


def test_cpu_jiffies_sums_the_busy_fields_of_the_cpus_asked_for(proc):
    write_stat(proc, [
        stat_line("cpu", user=1000, idle=9999, steal=7),
        stat_line("cpu0", user=1, nice=2, system=4, idle=1000, iowait=2000, irq=8, softirq=16,
                  steal=32, guest=4000, guest_nice=8000),
        stat_line("cpu1", user=100, idle=5000),
        stat_line("cpu2", user=1000, steal=3),
        stat_line("cpu10", user=10000),
    ])
    assert noise.cpu_jiffies([0], str(proc / "stat")) == (1 + 2 + 4 + 8 + 16 + 32, 32)
    assert noise.cpu_jiffies([0, 2], str(proc / "stat")) == (63 + 1003, 35)
    assert noise.cpu_jiffies([1], str(proc / "stat")) == (100, 0)  # idle is not busy
    assert noise.cpu_jiffies([], str(proc / "stat")) == (0, 0)
    assert noise.cpu_jiffies([5], str(proc / "stat")) == (0, 0)
    # None: the machine's total line, not the sum of the CPU lines
    assert noise.cpu_jiffies(None, str(proc / "stat")) == (1007, 7)


def test_cpu_jiffies_of_an_old_kernel_without_steal_and_stops_at_the_cpu_lines(proc):
    (proc / "stat").write_text("\n".join([
        stat_line("cpu", user=5, nice=1, system=2, idle=9, fields=4),
        stat_line("cpu0", user=5, nice=1, system=2, idle=9, fields=4),
        "intr 1 2",
        stat_line("cpu1", user=77),  # not a CPU line of the table: after it ends
    ]) + "\n")
    assert noise.cpu_jiffies([0], str(proc / "stat")) == (8, 0)
    assert noise.cpu_jiffies([1], str(proc / "stat")) == (0, 0)
    assert noise.cpu_jiffies(None, str(proc / "stat")) == (8, 0)


def test_process_cpu_s_reads_utime_and_stime_past_a_hostile_command_name(proc):
    write_pid(proc, 123, utime=j(2.5), stime=j(0.5), comm="a) R 1 2 3 4 5 6 7 8 9 10 11 (b")
    assert noise.process_cpu_s(123, str(proc)) == pytest.approx(3.0)
    assert noise.process_cpu_s(124, str(proc)) is None  # gone
    (proc / "125").mkdir()
    (proc / "125" / "stat").write_text("125 no parenthesis\n")
    assert noise.process_cpu_s(125, str(proc)) is None


def test_loadavg_and_cpu_frequency_from_their_files(proc, tmp_path):
    assert noise.loadavg(str(proc)) == (0.5, 1.25, 2.0)
    root = tmp_path / "cpu"
    for cpu, khz in ((0, "2000000"), (1, "3000001"), (3, "fast")):
        (root / f"cpu{cpu}" / "cpufreq").mkdir(parents=True)
        (root / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").write_text(khz + "\n")
    assert noise.cpu_freq_mhz([0, 1], str(root)) == 2500.0
    assert noise.cpu_freq_mhz([0, 2, 3], str(root)) == 2000.0  # cpu2 absent, cpu3 unreadable
    assert noise.cpu_freq_mhz([2, 3], str(root)) is None


class Clock:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


class Own:
    def __init__(self, *values):
        self.values = list(values)

    def __call__(self):
        return self.values.pop(0)


def probe_window(proc, tmp_path, others_s, workers=(0.5, 0.5), coordinator_s=0.2,
                 steal_s=0.0, limit=noise.NOISE_LIMIT, window_s=2.0, gone=()):
    """A 2-CPU window of ``window_s`` in which two workers, the coordinator and others used
    the given CPU seconds (steal is part of others' busy time)."""
    freq = tmp_path / "cpufreq"
    for cpu in (0, 1):
        (freq / f"cpu{cpu}" / "cpufreq").mkdir(parents=True, exist_ok=True)
        (freq / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").write_text("2000000\n")
    write_stat(proc, [stat_line("cpu", user=10**6), stat_line("cpu0", user=j(100.0), steal=5),
                      stat_line("cpu1", user=j(50.0)), stat_line("cpu2", user=0)])
    for pid in (11, 12):
        write_pid(proc, pid, utime=j(1.0), stime=j(1.0))
    probe = noise.WindowProbe((0, 1), limit, proc=str(proc), cpufreq=str(freq),
                              clock=Clock(10.0, 10.0 + window_s),
                              own_cpu_s=Own(5.0, 5.0 + coordinator_s))
    probe.begin([11, 12, 0])
    total = sum(workers) + coordinator_s + others_s
    write_stat(proc, [stat_line("cpu", user=10**7),
                      stat_line("cpu0", user=j(100.0 + total / 2 - steal_s), steal=5 + j(steal_s)),
                      stat_line("cpu1", user=j(50.0 + total / 2)),
                      stat_line("cpu2", user=j(1000.0))])  # not measured: ignored
    for pid, used in zip((11, 12), workers):
        write_pid(proc, pid, utime=j(1.0 + used), stime=j(1.0))
    for pid in gone:
        (proc / str(pid) / "stat").unlink()
    return probe.end()


def test_a_window_where_others_used_a_fifth_of_the_cpus_is_noisy(proc, tmp_path):
    seen = probe_window(proc, tmp_path, others_s=0.8, steal_s=0.2)
    resolution = 2.0 / HZ / 2.0
    assert seen["window_s"] == 2.0 and seen["cpus"] == [0, 1]
    assert seen["others_cpu_share"] == pytest.approx(0.8 / 4.0)
    assert seen["workers_cpu_share"] == pytest.approx(1.0 / 4.0)
    assert seen["coordinator_cpu_s"] == pytest.approx(0.2)
    assert seen["steal_share"] == pytest.approx(0.2 / 4.0)
    assert seen["resolution_share"] == pytest.approx(resolution)
    assert seen["loadavg"] == [0.5, 1.25, 2.0] and seen["freq_mhz"] == 2000.0
    assert seen["limit"] == noise.NOISE_LIMIT and seen["noisy"] is True
    assert "unaccounted_pids" not in seen


def test_the_counters_resolution_is_given_to_the_window_before_calling_it_noisy(proc, tmp_path):
    # others 5.5% of the CPUs: above the 5% limit by less than the counters' resolution
    # (2 jiffies over the window) when HZ is 100 -> not noisy; 7% is noisy
    if HZ != 100:
        pytest.skip(f"the figures assume HZ=100, this kernel ticks at {HZ}")
    assert probe_window(proc, tmp_path, others_s=0.22)["noisy"] is False
    assert probe_window(proc, tmp_path, others_s=0.28)["noisy"] is True
    assert probe_window(proc, tmp_path, others_s=0.28, limit=0.07)["noisy"] is False
    assert probe_window(proc, tmp_path, others_s=0.28, limit=0.05)["others_cpu_share"] == 0.07


def test_a_quiet_window_and_shares_that_cannot_exceed_the_cpus(proc, tmp_path):
    seen = probe_window(proc, tmp_path, others_s=0.0, workers=(1.9, 1.9), coordinator_s=0.0)
    assert seen["others_cpu_share"] == 0.0 and seen["noisy"] is False
    assert seen["workers_cpu_share"] == pytest.approx(0.95)
    # workers that used more than the CPUs' busy time (accounting skew): others clamp at 0
    seen = probe_window(proc, tmp_path, others_s=-1.0, workers=(1.0, 1.0), coordinator_s=0.0)
    assert seen["others_cpu_share"] == 0.0
    # a window shorter than the time counted: shares stop at the whole of the CPUs
    seen = probe_window(proc, tmp_path, others_s=3.0, workers=(4.0, 4.0), window_s=1.0)
    assert seen["workers_cpu_share"] == 1.0 and seen["others_cpu_share"] == 1.0
    assert seen["resolution_share"] == pytest.approx(2.0 / HZ)


def test_a_worker_gone_before_the_end_counts_as_others(proc, tmp_path):
    seen = probe_window(proc, tmp_path, others_s=0.0, workers=(0.5, 0.5), coordinator_s=0.0,
                        gone=(12,))
    assert seen["unaccounted_pids"] == [12]
    assert seen["workers_cpu_share"] == pytest.approx(0.5 / 4.0)
    assert seen["others_cpu_share"] == pytest.approx(0.5 / 4.0) and seen["noisy"] is True


def test_a_worker_gone_first_does_not_hide_the_next_one(proc, tmp_path):
    seen = probe_window(proc, tmp_path, others_s=0.0, workers=(0.5, 0.5), coordinator_s=0.0,
                        gone=(11,))
    assert seen["unaccounted_pids"] == [11]
    assert seen["workers_cpu_share"] == pytest.approx(0.5 / 4.0)


def test_the_real_proc_stat_is_read_by_default():
    busy, steal = noise.cpu_jiffies([0])
    assert busy > 0 and steal >= 0
    assert noise.cpu_jiffies()[0] >= busy  # the machine's total holds CPU 0's


def test_end_without_begin_reports_nothing():
    assert noise.WindowProbe((0,)).end() == {}


def test_cpu_meter_splits_the_machine_into_own_and_foreign_time(proc):
    write_stat(proc, [stat_line("cpu", user=j(100.0), steal=j(1.0)), stat_line("cpu0")])
    meter = noise.CpuMeter(cpus=4, proc=str(proc), clock=Clock(1.0, 3.0), own_cpu_s=Own(7.0, 9.0))
    with meter:
        (proc / "loadavg").write_text("3.00 2.00 1.00 1/2 3\n")
        write_stat(proc, [stat_line("cpu", user=j(103.0), steal=j(1.4)), stat_line("cpu0")])
    r = meter.result
    assert r["wall_s"] == 2.0 and r["cpus"] == 4
    assert r["busy_share"] == pytest.approx(3.4 / 8.0, abs=1e-3)
    assert r["own_cpu_s"] == 2.0 and r["foreign_cpu_s"] == pytest.approx(1.4)
    assert r["foreign_share"] == pytest.approx(1.4 / 8.0, abs=1e-3)
    assert r["steal_share"] == pytest.approx(0.4 / 8.0, abs=1e-3)
    assert r["loadavg_start"] == [0.5, 1.25, 2.0] and r["loadavg_end"] == [3.0, 2.0, 1.0]
    meter = noise.CpuMeter(cpus=1, proc=str(proc), clock=Clock(0.0, 1.0), own_cpu_s=Own(0, 5.0))
    with meter:
        pass
    assert meter.result["foreign_cpu_s"] == 0.0 and meter.result["foreign_share"] == 0.0


def test_wait_quiet_returns_at_the_first_quiet_window(proc):
    write_stat(proc, [stat_line("cpu0", user=500)])
    seen = asyncio.run(noise.wait_quiet((0,), 0.05, 10.0, window_s=0.01, proc=str(proc)))
    assert seen["quiet"] is True and seen["checks"] == 1 and seen["others_cpu_share"] == 0.0
    assert seen["waited_s"] < 10.0


def test_wait_quiet_gives_up_after_its_wait_on_busy_cpus(proc):
    async def busy():
        total = 0
        while True:
            total += j(1000.0)  # far more than the window: always the whole CPU
            tmp = proc / "stat.new"
            tmp.write_text(stat_line("cpu0", user=total) + "\n")
            os.replace(tmp, proc / "stat")
            await asyncio.sleep(0.001)

    async def main():
        writer = asyncio.ensure_future(busy())
        await asyncio.sleep(0)
        try:
            return await noise.wait_quiet((0,), 0.05, 0.0, window_s=0.02, proc=str(proc))
        finally:
            writer.cancel()

    seen = asyncio.run(main())  # no wait allowed: one window, busy, given up
    assert seen["quiet"] is False and seen["others_cpu_share"] == 1.0 and seen["checks"] == 1
    # a limit the busy CPU meets (all of it) ends at once
    write_stat(proc, [stat_line("cpu0", user=0)])
    seen = asyncio.run(noise.wait_quiet((0,), 1.0, 5.0, window_s=0.01, proc=str(proc)))
    assert seen["quiet"] is True and seen["checks"] == 1


def test_short_windows_odd_figures_and_unreadable_cpus(proc, tmp_path):
    """A 0.5 s window (shares over less than one CPU-second), figures with more digits than
    the record keeps, and a frequency file missing for the first CPU only."""
    if HZ != 100:
        pytest.skip(f"the figures assume HZ=100, this kernel ticks at {HZ}")
    seen = probe_window(proc, tmp_path, others_s=0.37, workers=(0.13, 0.21),
                        coordinator_s=0.012345, window_s=0.5)
    assert seen["window_s"] == 0.5
    assert seen["others_cpu_share"] == pytest.approx(round(0.37 / 1.0, 4), abs=0.0101)
    assert seen["workers_cpu_share"] == 0.34 and seen["coordinator_cpu_s"] == 0.012
    assert seen["resolution_share"] == 0.04  # 2 jiffies over half a second
    seen = probe_window(proc, tmp_path, others_s=0.0, workers=(0.0, 0.0), coordinator_s=0.0,
                        window_s=0.001)
    assert seen["resolution_share"] == 1.0 and seen["window_s"] == 0.001
    root = tmp_path / "freq"
    (root / "cpu1" / "cpufreq").mkdir(parents=True)
    (root / "cpu1" / "cpufreq" / "scaling_cur_freq").write_text("2345678\n")
    assert noise.cpu_freq_mhz([0, 1], str(root)) == 2345.7


def test_stat_lines_of_seven_and_eight_fields(proc):
    write_stat(proc, [stat_line("cpu0", user=1, irq=2, softirq=4, fields=7),
                      stat_line("cpu1", user=1, steal=8, fields=8)])
    assert noise.cpu_jiffies([0], str(proc / "stat")) == (7, 0)
    assert noise.cpu_jiffies([1], str(proc / "stat")) == (9, 8)


def test_a_share_at_the_limit_is_quiet(proc):
    write_stat(proc, [stat_line("cpu0", user=500)])
    seen = asyncio.run(noise.wait_quiet((0,), 0.0, 10.0, window_s=0.01, proc=str(proc)))
    assert seen["quiet"] is True and seen["checks"] == 1


def test_own_cpu_time_readers_agree_with_os_times():
    """This process's CPU time, and with its waited-for children, as os.times() reads it."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True,
                   timeout=120)
    t = os.times()
    assert noise.self_cpu_s() == pytest.approx(t.user + t.system, abs=0.05)
    assert noise._own_and_children_cpu_s() == pytest.approx(
        t.user + t.system + t.children_user + t.children_system, abs=0.05)
    assert t.children_user + t.children_system > 0.05  # the child's time is in there


def test_cpu_meter_rounds_what_it_records(proc):
    write_stat(proc, [stat_line("cpu", user=j(100.0)), stat_line("cpu0")])
    meter = noise.CpuMeter(cpus=2, proc=str(proc), clock=Clock(1.0, 1.23456),
                           own_cpu_s=Own(0.0, 0.123456))
    with meter:
        write_stat(proc, [stat_line("cpu", user=j(100.37)), stat_line("cpu0")])
    r = meter.result
    assert r["wall_s"] == 0.235 and r["own_cpu_s"] == 0.123
    assert r["foreign_cpu_s"] == pytest.approx(0.37 - 0.123456, abs=0.0006)
    assert r["busy_share"] == round(0.37 / (0.23456 * 2), 3)
    meter = noise.CpuMeter(cpus=1, proc=str(proc), clock=Clock(0.0, 0.1), own_cpu_s=Own(0, 0))
    with meter:
        write_stat(proc, [stat_line("cpu", user=j(200.0)), stat_line("cpu0")])
    assert meter.result["foreign_share"] == 1.0  # 99.6 s in 0.1 s: capped at the whole CPU
