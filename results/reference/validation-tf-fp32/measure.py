"""Measure the committed validation runs: repeats of one scaling experiment, each started on
a quiet machine, with the conditions it ran in recorded beside it (``conditions.json``).

    .venv/bin/python results/reference/validation-tf-fp32/measure.py --repeats 3

Each repeat is one ``scaler scaling`` run (fresh workers). The placements' order alternates
between repeats so slow drift does not favour one series. While a run lasts, a sampler reads
``/proc/stat`` and the CPU time of the run's own process tree every second; ``others`` is the
share of all CPUs used by everything else. Per group, the samples inside the group's measured
window (from its recorded query times, CLOCK_MONOTONIC like the sampler) are averaged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from scaler.bench.machine import loadavg, wait_until_quiet

HERE = Path(__file__).resolve().parent
HZ = os.sysconf("SC_CLK_TCK")
COMMAND = ["scaling", "--cores-per-instance", "1", "--oversubscribe", "--instances", "1-6",
           "--model", "resnet50", "--precision", "fp32", "--engine", "tf"]


def _busy() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[i] for i in (0, 1, 2, 5, 6, 7))


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _tree_jiffies(root: int) -> int:
    """CPU jiffies of ``root``, its live descendants and the children it has waited for."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                parent[int(name)] = (int(st[1]), st)
    total, members, frontier = 0, {root}, [root]
    while frontier:
        pid = frontier.pop()
        frontier += [p for p, (pp, _) in parent.items() if pp == pid and p not in members]
        members.update(frontier)
    for pid in members:
        if pid in parent:
            st = parent[pid][1]
            total += int(st[11]) + int(st[12])  # utime stime
            total += int(st[13]) + int(st[14])  # cutime cstime (waited-for children)
    return total


def sample(root: int, stop: threading.Event, out: list[dict]) -> None:
    cpus = os.cpu_count() or 1
    t0, b0, o0 = time.monotonic(), _busy(), _tree_jiffies(root)
    while not stop.wait(1.0):
        t, b, o = time.monotonic(), _busy(), _tree_jiffies(root)
        others = max(0.0, (b - b0) - (o - o0)) / HZ / max((t - t0) * cpus, 1e-9)
        out.append({"t": round(t, 3), "others": round(min(others, 1.0), 3),
                    "load1": loadavg()[0]})
        t0, b0, o0 = t, b, o


def per_group(run: Path, series: list[dict]) -> list[dict]:
    import numpy as np

    doc = json.loads((run / "run.json").read_text())
    arrays = np.load(run / "samples.npz")
    rows = []
    for g in doc["groups"]:
        starts = [arrays[k] for k in arrays.files if k.startswith(f"g{g['id']}_") and
                  k.endswith("_start_ns")]
        ends = [arrays[k] for k in arrays.files if k.startswith(f"g{g['id']}_") and
                k.endswith("_end_ns")]
        if not starts:
            continue
        lo = min(float(s.min()) for s in starts) / 1e9
        hi = max(float(e.max()) for e in ends) / 1e9
        inside = [s["others"] for s in series if lo <= s["t"] <= hi + 1.0]
        rows.append({"group": g["label"], "window_s": round(hi - lo, 1),
                     "others_mean": round(sum(inside) / len(inside), 3) if inside else None,
                     "others_max": max(inside) if inside else None})
    return rows


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--max-others", type=float, default=0.2)
    p.add_argument("--max-wait", type=float, default=3600.0)
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--smoke", action="store_true", help="tiny model, N 1-2, short windows")
    args = p.parse_args()
    command = COMMAND if not args.smoke else [
        "scaling", "--cores-per-instance", "1", "--instances", "1-2", "--model", "tiny",
        "--min-duration", "2", "--warmup", "0.3"]
    scaler = str(Path(sys.executable).parent / "scaler")
    for k in range(args.repeats):
        order = "shared,pinned" if k % 2 == 0 else "pinned,shared"
        quiet = wait_until_quiet(args.max_load, args.max_others, args.max_wait, window_s=5.0,
                                 say=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"repeat {k + 1}: {quiet}", file=sys.stderr, flush=True)
        series: list[dict] = []
        stop = threading.Event()
        argv = [scaler, *command, "--placement", order, "--out", str(args.out), "--json"]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        sampler = threading.Thread(target=sample, args=(child.pid, stop, series), daemon=True)
        sampler.start()
        out, _ = child.communicate(timeout=3600)
        stop.set()
        sampler.join(timeout=5)
        if child.returncode != 0:
            print(f"repeat {k + 1} failed: exit {child.returncode}", file=sys.stderr)
            return 1
        run = Path(json.loads(out)["run"])
        others = [s["others"] for s in series]
        conditions = {
            "command": ["scaler", *argv[1:]], "quiet_check_before": quiet,
            "others_mean": round(sum(others) / len(others), 3) if others else None,
            "others_max": max(others) if others else None,
            "load1_start": series[0]["load1"] if series else None,
            "load1_end": series[-1]["load1"] if series else None,
            "groups": per_group(run, series), "series": series,
            "method": __doc__.split("\n\n")[-1].strip(),
        }
        (run / "conditions.json").write_text(json.dumps(conditions, indent=1) + "\n")
        print(f"repeat {k + 1}: {run} others mean {conditions['others_mean']}",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
