"""CpuMeter records its shares rounded to 3 decimals: hand-made /proc/stat with figures
whose 4th decimal is not 0, and a hand clock (pure; see test_noise_proc.py)."""

from __future__ import annotations

import pytest

from scaler import noise


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


class Own:
    def __init__(self, *seconds: float) -> None:
        self.seconds = list(seconds)

    def __call__(self) -> float:
        return self.seconds.pop(0)


def write_stat(proc, user: int, steal: int) -> None:
    values = [user, 0, 0, 0, 0, 0, 0, steal, 0, 0]
    line = " ".join(["cpu", *map(str, values)])
    (proc / "stat").write_text(f"{line}\ncpu0 {' '.join(['0'] * 10)}\nintr 1\nctxt 9\n")


@pytest.mark.skipif(noise.HZ != 100, reason="the figures below are written for USER_HZ 100")
def test_foreign_and_steal_shares_are_rounded_to_three_decimals(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "loadavg").write_text("0.00 0.00 0.00 1/2 3\n")
    write_stat(proc, user=10000, steal=100)
    meter = noise.CpuMeter(cpus=2, proc=str(proc), clock=Clock(1.0, 1.23456),
                           own_cpu_s=Own(0.0, 0.123456))
    with meter:
        write_stat(proc, user=10037, steal=113)  # 0.37 s user + 0.13 s stolen = 0.50 s busy
    r = meter.result
    # capacity 2 x 0.23456 = 0.46912 CPU-s; foreign 0.50 - 0.123456 = 0.376544 s
    assert r["foreign_cpu_s"] == 0.377
    assert r["foreign_share"] == 0.803  # 0.376544 / 0.46912 = 0.80266
    assert r["steal_share"] == 0.277  # 0.13 / 0.46912 = 0.27711
