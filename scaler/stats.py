"""Summary statistics over raw samples: latency percentiles and throughput windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
# fewest samples for which a percentile means anything (LoadGen's rule of thumb)
MIN_SAMPLES = {99.0: 100, 99.9: 1000}


def pname(p: float) -> str:
    return f"p{p:g}"


def latency_ms(start_ns: np.ndarray, end_ns: np.ndarray) -> dict[str, Any]:
    """Mean, percentiles, min, max and std of per-query latency, in milliseconds."""
    lat = (np.asarray(end_ns, dtype=np.int64) - np.asarray(start_ns, dtype=np.int64)) / 1e6
    if lat.size == 0:
        return {"samples": 0}
    out: dict[str, Any] = {"mean": float(lat.mean())}
    for p, v in zip(PERCENTILES, np.percentile(lat, PERCENTILES)):
        out[pname(p)] = float(v)
    out.update(min=float(lat.min()), max=float(lat.max()), std=float(lat.std()),
               samples=int(lat.size))
    return out


def sample_warnings(samples: int) -> list[str]:
    return [f"{pname(p)} from {samples} samples (fewer than {n}): not meaningful"
            for p, n in MIN_SAMPLES.items() if samples < n]


def common_window(starts: Sequence[np.ndarray], ends: Sequence[np.ndarray]) -> tuple[int, int]:
    """The span in which every instance was running: [latest first start, earliest last end]."""
    return max(int(s[0]) for s in starts), min(int(e[-1]) for e in ends)


def throughput_ips(starts: Sequence[np.ndarray], ends: Sequence[np.ndarray], batch: int,
                   shared_clock: bool) -> tuple[float, dict[str, Any]]:
    """Aggregate images/s of instances that ran together.

    With one clock (same host boot) the rate is the queries completed inside the common
    window over its length, so start-up and stop skew between instances do not count.
    Otherwise (VMs, remote hosts) each instance's own rate is summed.
    """
    pairs = [(np.asarray(s), np.asarray(e)) for s, e in zip(starts, ends) if len(s)]
    if not pairs or len(pairs) < len(starts):
        return 0.0, {"method": "none", "reason": "an instance completed no query"}
    if shared_clock:
        w0, w1 = common_window([p[0] for p in pairs], [p[1] for p in pairs])
        if w1 > w0:
            done = sum(int(np.count_nonzero((e > w0) & (e <= w1))) for _, e in pairs)
            if done:
                span_s = (w1 - w0) / 1e9
                return done * batch / span_s, {"method": "common_window", "window_s": span_s,
                                                "queries_in_window": done}
    rates = [len(s) * batch / max((e[-1] - s[0]) / 1e9, 1e-9) for s, e in pairs]
    return float(sum(rates)), {"method": "sum_of_instances",
                               "window_s": max((e[-1] - s[0]) / 1e9 for s, e in pairs)}
