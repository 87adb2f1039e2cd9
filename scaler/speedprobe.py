"""A speed probe per window: how fast the measured CPUs were, as the counters cannot say.

A CPU quota (cgroup ``cpu.max``), a co-tenant on the host's SMT sibling, a frequency drop or
another process streaming memory slow a window down while ``/proc`` shows the CPUs idle but
for the workers. Two tiny kernels, compiled once with numba (cached on disk), run on every
measured CPU at each window's two edges:

- **chain**: a dependent integer chain (multiply-add, one after the other): its rate follows
  the clock and drops with time taken from the vCPU (steal, a quota, a busy sibling);
- **stream**: a sequential read of a buffer twice the CPU's share of the last-level cache
  (at least 8 MiB): memory bandwidth, which a streaming neighbour takes.

Where: one thread of the coordinator per measured CPU, pinned to it, all at once. The start
edge runs after every worker is ready and before ``start`` is sent, the end edge after the
workers have handed their samples over: the workers are idle on both edges (blocked on their
protocol), so the probe neither disturbs the window nor is slowed by the measurement itself,
and nothing is compiled or run inside a timed query. Each kernel runs :data:`REPEATS` times
and the fastest counts: a single timer interrupt or host tick costs a 3 ms kernel several
percent on a cloud vCPU, where one-shot figures flagged most windows of a quiet machine; a
disturbance that lasts (a quota, a neighbour, a slower clock) slows every repeat. Each edge
takes about :data:`TARGET_MS` x :data:`REPEATS` x 2 per CPU (the sizes are calibrated once
per process).

A window is ``contended`` when its slowest figure (over CPUs and both edges) is more than
:data:`CONTENDED_BELOW` below the run's idle speed: the median of the reference probes taken
on the idle CPUs before each group's workers start (so the first window can be contended
too); its cause names the figures (:func:`judge` says why the median, not the best).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

CONTENDED_BELOW = 0.10  # a window's probe this far below the run's idle speed: contended
TARGET_MS = 3.0  # each kernel's calibrated duration on an undisturbed CPU
REPEATS = 3  # each kernel runs this often per edge; the fastest counts
# styles whose runtimes spin between queries: a probe beside their idle workers measures the
# spin (a shared model-zoo group at N=8 read 88% below), not another tenant; not judged
SELF_SPINNING = ("defaults", "model-zoo")
MIN_BUFFER = 8 << 20
MAX_BUFFER = 32 << 20  # the edge's time budget (20 ms) before the LLC rule
_kernels: tuple[Any, Any] | None = None
_calibration: dict[str, int] = {}
_buffers: dict[int, Any] = {}
_lock = threading.Lock()


def kernels() -> tuple[Any, Any]:
    """The two compiled kernels (numba, ``cache=True``, ``nogil``: one thread per CPU)."""
    global _kernels
    if _kernels is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def chain(n: int, seed: int) -> int:  # pragma: no cover - compiled
            x = seed
            for _ in range(n):  # not affine: no closed form for the compiler to find
                x = (x * 6364136223846793005 + 1442695040888963407) ^ (x >> 29)
            return x

        @numba.njit(cache=True, nogil=True)
        def stream(buf: Any, passes: int) -> int:  # pragma: no cover - compiled
            total = 0
            for _ in range(passes):
                for i in range(0, buf.shape[0], 8):  # one 64-byte line per step
                    total += buf[i]
            return total

        _kernels = (chain, stream)
    return _kernels


def llc_share_bytes(cpu: int = 0, root: str = "/sys/devices/system/cpu") -> int:
    """The last-level cache's size over the CPUs sharing it (sysfs), 0 when unknown."""
    from affinity.cpulist import parse_cpulist

    best = (0, 0)
    folder = f"{root}/cpu{cpu}/cache"
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not name.startswith("index"):
            continue
        try:
            with open(f"{folder}/{name}/level") as f:
                level = int(f.read())
            with open(f"{folder}/{name}/size") as f:
                text = f.read().strip()
            with open(f"{folder}/{name}/shared_cpu_list") as f:
                sharing = len(parse_cpulist(f.read().strip())) or 1
        except (OSError, ValueError):
            continue
        size = int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1) \
            if text[-1] in "KM" else int(text)
        best = max(best, (level, size // sharing))
    return best[1]


def calibrate() -> dict[str, int]:
    """Chain length and stream passes so each takes about TARGET_MS here, once a process
    (the fastest of a few tries: a try that was disturbed is slower, never faster)."""
    with _lock:
        if _calibration:
            return _calibration
        import numpy as np

        chain, stream = kernels()
        size = min(max(2 * llc_share_bytes(), MIN_BUFFER), MAX_BUFFER)
        buf = np.ones(size // 8, dtype=np.int64)
        chain(1000, 1)
        stream(buf, 1)  # compiled (or loaded from the cache) before any timing
        n = 1 << 20
        chain_s = min(_timed(chain, n, 1) for _ in range(5))
        pass_s = min(_timed(stream, buf, 1) for _ in range(3))
        _calibration.update(
            chain_n=max(1000, int(n * TARGET_MS / 1e3 / max(chain_s, 1e-9))),
            stream_bytes=size,
            stream_passes=max(1, round(TARGET_MS / 1e3 / max(pass_s, 1e-9))))
        return _calibration


def _timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def enabled() -> bool:
    """False where ``SCALER_SPEED_PROBE=off`` (the testbed's emulated guest)."""
    return os.environ.get("SCALER_SPEED_PROBE", "").lower() != "off"


def prepare(cpus: Iterable[int]) -> None:
    """Calibrate and give every CPU its buffer (touched first by a thread pinned there, so
    on its own node), before a group's workers start: neither may run beside a window."""
    calibrate()
    threads = [threading.Thread(target=_buffer, args=(cpu,), name=f"speed-probe-{cpu}")
               for cpu in sorted(set(cpus)) if cpu not in _buffers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


def _buffer(cpu: int) -> Any:
    import numpy as np

    buf = _buffers.get(cpu)
    if buf is None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only
        except OSError:
            pass  # probe() says so
        buf = _buffers[cpu] = np.ones(_calibration["stream_bytes"] // 8, dtype=np.int64)
    return buf


def _on_cpu(cpu: int, out: dict[int, dict[str, float]]) -> None:
    try:
        os.sched_setaffinity(0, {cpu})  # this thread only
    except OSError as exc:
        out[cpu] = {"error": f"cannot pin to CPU {cpu}: {exc.strerror or exc}"}  # type: ignore
        return
    cal = _calibration
    chain, stream = kernels()
    buf = _buffer(cpu)
    chain_s = min(_timed(chain, cal["chain_n"], cpu + 1) for _ in range(REPEATS))
    stream_s = min(_timed(stream, buf, cal["stream_passes"]) for _ in range(REPEATS))
    out[cpu] = {"chain_mops": round(cal["chain_n"] / chain_s / 1e6, 2),
                "stream_gbps": round(cal["stream_bytes"] * cal["stream_passes"] / stream_s / 1e9,
                                     3)}


def probe(cpus: Iterable[int]) -> dict[str, Any]:
    """Both kernels on every CPU of ``cpus`` at once (one pinned thread each)."""
    cal = calibrate()
    out: dict[int, dict[str, float]] = {}
    t0 = time.monotonic()
    threads = [threading.Thread(target=_on_cpu, args=(cpu, out), name=f"speed-probe-{cpu}")
               for cpu in sorted(set(cpus))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return {"took_ms": round((time.monotonic() - t0) * 1e3, 2),
            "per_cpu": {str(c): out.get(c, {"error": "no answer"}) for c in sorted(set(cpus))},
            "calibration": dict(cal)}


def slowest(edges: Sequence[dict[str, Any]], key: str) -> float | None:
    """The lowest ``key`` figure over every CPU of every edge (None when none measured)."""
    values = [v[key] for e in edges for v in (e.get("per_cpu") or {}).values() if key in v]
    return min(values) if values else None


def judge(records: Iterable[dict[str, Any]], below: float = CONTENDED_BELOW) -> None:
    """Mark each group record's ``speed_probe`` contended or not against the run's speed:
    the median of the reference probes taken on the idle CPUs before each group (a typical
    undisturbed figure), or, in records without references, the best window. A window whose
    slowest chain or stream figure is more than ``below`` under it is contended; the cause
    names the figures.

    Why the idle median and not the best of everything: the best of dozens of noisy probes
    is their upper tail, and on a cloud vCPU 10% below it flagged about a third of the
    windows of a quiet ``make demo`` (the stream figure alone varies 10-15% there); the
    median of the idle probes moves only when most of the run is slowed."""
    records = list(records)
    probed = []
    for r in records:
        p = r.get("speed_probe") or {}
        if not p.get("edges"):
            continue
        if r.get("threading") in SELF_SPINNING:  # its edges measure the group itself
            p.update(contended=False, cause="", not_judged=(
                f"threading {r['threading']}: the group's own runtimes spin on its CPUs "
                "between queries, where the probe runs"))
            continue
        probed.append(p)
    for key, unit in (("chain_mops", "M dependent ops/s"), ("stream_gbps", "GB/s read")):
        refs = sorted(s for p in probed if (s := slowest([p.get("reference") or {}], key))
                      is not None)
        if refs:
            base, what = _median(refs), "the run's idle speed"
        else:
            base = max((s for p in probed if (s := slowest(p["edges"], key)) is not None),
                       default=None)
            what = "the run's best"
        for p in probed:
            if key == "chain_mops":
                p["causes"] = []
            mine = slowest(p["edges"], key)
            if mine is not None and base:
                p[f"{key}_of_best"] = round(mine / base, 4)
                if mine < (1 - below) * base:
                    p["causes"].append(f"{key.split('_')[0]} {mine:g} {unit} is "
                                       f"{1 - mine / base:.0%} below {what} {base:g}")
    for p in probed:
        causes = p.pop("causes")
        p["contended"] = bool(causes)
        p["cause"] = "; ".join(causes)


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def remeasure_cause(record: dict[str, Any]) -> str | None:
    """Why a complete group record should be measured again (its window contended)."""
    p = record.get("speed_probe") or {}
    if record.get("status") != "complete" or not p.get("contended"):
        return None
    return str(p.get("cause") or "speed probe below the run's idle speed")


def contention_flags(point: dict[str, Any]) -> list[str]:
    """What a figure's text says of its windows' speed probes."""
    out = []
    if point.get("contended"):
        out.append("CONTENDED: rests on a window whose speed probe ran > 10% below the "
                   "run's idle speed")
    if point.get("remeasured"):
        out.append(f"{point['remeasured']} contended attempt(s) re-measured")
    return out


def line(record: dict[str, Any]) -> str | None:
    """One line for ``show``: the window's probe figures and verdict."""
    p = record.get("speed_probe") or {}
    if not p.get("edges"):
        return None
    chain, stream = slowest(p["edges"], "chain_mops"), slowest(p["edges"], "stream_gbps")
    if chain is None or stream is None:
        why = "; ".join(sorted({str(e.get("not_measured") or "no figures")
                                for e in p["edges"]}))
        return f"speed probe: not measured ({why})"
    verdict = (f"CONTENDED: {p['cause']}" if p.get("contended") else
               f"not judged ({p['not_judged']})" if p.get("not_judged") else "clean")
    # ``*_of_best``: the share of what the window was judged against (the run's idle speed;
    # its best window in runs without idle references: the key keeps its first name)
    return (f"speed probe: chain {chain:g} M ops/s ({p.get('chain_mops_of_best', 1):.0%} of "
            f"the run's speed), stream {stream:g} GB/s ({p.get('stream_gbps_of_best', 1):.0%} "
            f"of the run's speed), {verdict}")


def window_lines(doc: dict[str, Any]) -> list[str]:
    """``show``'s probe lines: one per measured window of a run, re-measures marked."""
    out = []
    for g in doc.get("groups", []):
        text = line(g)
        if text is None:
            continue
        mark = " (superseded by a re-measure)" if g.get("superseded") else ""
        attempt = f" attempt {g['attempt'] + 1}" if g.get("attempt") else ""
        out.append(f"  window {g.get('id')} {g.get('label', '')}{attempt}: {text}{mark}")
    return out
