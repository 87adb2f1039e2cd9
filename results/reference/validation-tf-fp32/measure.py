"""Measure the committed validation runs on a machine other people share: every group of one
scaling experiment, repeated, each in its own ``scaler scaling`` run (fresh workers), in a
shuffled order per repeat (slow drift hits every group alike), each kept only if others
left the CPUs mostly alone while it measured.

    .venv/bin/python results/reference/validation-tf-fp32/measure.py --repeats 3

The experiment: ResNet50, tf fp32, batch 1, ``shared`` (each instance every CPU) and
``pinned`` with one core per instance (``--cores-per-instance 1 --oversubscribe``), N = 1..6.
Each run takes the measurement lock (``--lock-wait``), so it never overlaps another scaler
run on this machine. Before a group starts, the share of all CPUs used by other processes is
read over 3 s windows until it is under ``--max-others`` or ``--quiet-wait`` seconds have
passed (the machine is shared and rarely quiet: the keep rule below decides). While the group
runs, a sampler reads ``/proc/stat`` and the CPU time of the run's own process tree every
second; ``others`` is the share of all CPUs used by everything else. A group whose measured
window (its recorded query times, CLOCK_MONOTONIC like the sampler) saw others above
``--keep-below`` on average is discarded, its folder moved to ``discarded/`` (not committed)
and measured again later, up to ``--attempts`` times. Each kept run holds
``conditions.json``: the quiet check before, the per-second series and the window's mean and
maximum. ``log.json`` lists every attempt with the rule it was judged by.

The runs are measured into ``collecting/`` (the tests and ``make bench`` do not read it) and
the script resumes from its ``log.json``; once every group has its repeats, move the kept
run folders up into this folder (``discarded/`` and ``log.json`` may stay in
``collecting/``), where ``reference_sets`` finds them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from scaler.bench.machine import loadavg, wait_until_quiet

HERE = Path(__file__).resolve().parent
HZ = os.sysconf("SC_CLK_TCK")
COMMON = ["--cores-per-instance", "1", "--oversubscribe", "--model", "resnet50",
          "--precision", "fp32", "--engine", "tf"]
GROUPS = [(p, n) for p in ("shared", "pinned") for n in range(1, 7)]


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
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, (pp, _) in parent.items() if pp == pid and p not in members]
        members.update(children)
        frontier += children
    total = 0
    for pid in members:
        if pid in parent:
            st = parent[pid][1]
            total += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])  # u s cu cs time
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


def window(run: Path) -> tuple[float, float]:
    """The group's measured window (s, CLOCK_MONOTONIC): first query start to last end."""
    from scaler.results import load_run

    arrays = load_run(run).samples()
    starts = [v for k, v in arrays.items() if k.endswith("_start_ns") and len(v)]
    ends = [v for k, v in arrays.items() if k.endswith("_end_ns") and len(v)]
    return (min(float(s.min()) for s in starts) / 1e9,
            max(float(e.max()) for e in ends) / 1e9)


def measure(placement: str, n: int, out: Path, max_others: float, quiet_wait: float
            ) -> tuple[Path, dict]:
    quiet = wait_until_quiet(float("inf"), max_others, quiet_wait, window_s=3.0,
                             say=lambda m: print(m, file=sys.stderr, flush=True))
    series: list[dict] = []
    stop = threading.Event()
    argv = [str(Path(sys.executable).parent / "scaler"), "scaling", "--placement", placement,
            "--instances", str(n), *COMMON, "--lock-wait", "7200", "--out", str(out),
            "--json"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    sampler = threading.Thread(target=sample, args=(child.pid, stop, series), daemon=True)
    sampler.start()
    stdout, _ = child.communicate(timeout=9000)
    stop.set()
    sampler.join(timeout=5)
    if child.returncode != 0:
        raise RuntimeError(f"{placement} x{n}: scaler exited {child.returncode}")
    run = Path(json.loads(stdout)["run"])
    lo, hi = window(run)
    inside = [s["others"] for s in series if lo <= s["t"] <= hi + 1.0]
    conditions = {
        "command": ["scaler", *argv[1:]], "quiet_check_before": quiet,
        "window_s": round(hi - lo, 1),
        "others_mean": round(sum(inside) / len(inside), 3) if inside else None,
        "others_max": max(inside) if inside else None,
        "load1_start": series[0]["load1"] if series else None,
        "load1_end": series[-1]["load1"] if series else None,
        "series": series, "method": __doc__.split("\n\n")[2].strip(),
    }
    (run / "conditions.json").write_text(json.dumps(conditions, indent=1) + "\n")
    return run, conditions


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-others", type=float, default=0.10)
    p.add_argument("--quiet-wait", type=float, default=300.0)
    p.add_argument("--keep-below", type=float, default=0.15)
    p.add_argument("--attempts", type=int, default=4)
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", type=Path, default=HERE / "collecting")
    args = p.parse_args()
    args.out.mkdir(exist_ok=True)
    rng = random.Random(args.seed)
    log_path = args.out / "log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else []
    done = {(e["placement"], e["instances"], e["repeat"]) for e in log if e["kept"]}
    for repeat in range(1, args.repeats + 1):
        order = GROUPS[:]
        rng.shuffle(order)
        for placement, n in order:
            if (placement, n, repeat) in done:
                continue
            for attempt in range(1, args.attempts + 1):
                run, c = measure(placement, n, args.out, args.max_others, args.quiet_wait)
                kept = c["others_mean"] is not None and c["others_mean"] < args.keep_below
                if not kept:
                    target = args.out / "discarded" / run.name
                    target.parent.mkdir(exist_ok=True)
                    shutil.move(str(run), target)
                    run = target
                log.append({"placement": placement, "instances": n, "repeat": repeat,
                            "attempt": attempt, "run": run.name, "kept": kept,
                            "others_mean": c["others_mean"], "others_max": c["others_max"],
                            "window_s": c["window_s"], "keep_below": args.keep_below})
                log_path.write_text(json.dumps(log, indent=1) + "\n")
                print(f"repeat {repeat} {placement} x{n} attempt {attempt}: others "
                      f"{c['others_mean']} -> {'kept' if kept else 'discarded'} ({run.name})",
                      file=sys.stderr, flush=True)
                if kept:
                    break
    kept = {(e["placement"], e["instances"], e["repeat"]) for e in log if e["kept"]}
    missing = [f"{p} x{n} repeat {r}" for r in range(1, args.repeats + 1) for p, n in GROUPS
               if (p, n, r) not in kept]
    print("every group has its repeats: move the kept runs up into " + str(HERE) if not missing
          else f"still to measure: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
