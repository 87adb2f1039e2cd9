"""How the ``onnxruntime`` engine expresses each ``--threading`` style, and what it read back.

ONNX Runtime's CPU provider runs an operator on its intra-op pool: ``intra_op_num_threads - 1``
pool threads plus the thread that called ``run`` (ORT never binds that one). Two session
options decide how these threads wait and where they run:

- ``session.intra_op.allow_spinning`` (default ``1``): a pool thread that runs out of work
  spins for a while before it blocks. Spinning threads of N unpinned instances burn the
  cores the others need;
- ``session.intra_op_thread_affinities``: one entry per pool thread, ``;``-separated, each a
  ``,``-list or ``a-b`` range of *1-based* logical processor ids (ORT subtracts 1: ``"2"``
  binds the first pool thread to CPU 1; ``onnxruntime/core/util/thread_utils.cc``,
  ``ReadThreadAffinityConfig``). It must list exactly ``intra_op_num_threads - 1`` entries.
  Each pool thread sets its own affinity when it starts, a moment after the session exists.

The styles:

- ``tuned`` (scaler's default): the counts from the partition, ``allow_spinning=0`` (threads
  sleep when idle), no affinities (ORT sets none when the thread count is given): unpinned
  instances share the cores politely;
- ``defaults``: ORT out of the box with only the thread counts set (spinning on, no
  affinities);
- ``model-zoo`` (Intel Model Zoo's launcher of 2019-2020): intra-op threads = the physical
  cores among the CPUs this process may run on (``os.sched_getaffinity``), inter-op = their
  sockets, and compact binding: thread k on the first CPU of the k-th allowed core (the
  calling thread, k = 0, is bound by scaler since ORT will not). Spinning stays at ORT's
  default: the launcher set ``KMP_BLOCKTIME=1``, a 1 ms spin after each parallel region
  before sleeping; ORT's spin is likewise a bounded spin before blocking, and its only
  other setting (off) would be blocktime 0. Inter-op threads only run in ORT's parallel
  execution mode; scaler keeps ORT's sequential mode, so the count is recorded but no
  inter-op pool exists, as TensorFlow's inter-op pool idles on a chain-shaped ResNet50.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

SPINNING = "session.intra_op.allow_spinning"
INTER_SPINNING = "session.inter_op.allow_spinning"
AFFINITIES = "session.intra_op_thread_affinities"
STYLES = ("tuned", "defaults", "model-zoo")


@dataclass(frozen=True)
class ThreadPlan:
    """The session options one style asks for in this process."""

    style: str
    intra_op_threads: int
    inter_op_threads: int
    config: dict[str, str] = field(default_factory=dict)  # session config entries set
    # compact binding: CPU of intra-op thread k (k = 0 is the calling thread); () = unbound
    thread_cpus: tuple[int, ...] = ()


def plan_threads(style: str, threads: int, inter_op_threads: int,
                 allowed: set[int] | None = None) -> ThreadPlan:
    """The options of ``style`` for a process allowed ``allowed`` CPUs (default: its own
    affinity, read now); ``threads``/``inter_op_threads`` are the partition's counts."""
    if style == "tuned":
        return ThreadPlan(style, threads, inter_op_threads,
                          {SPINNING: "0", INTER_SPINNING: "0"})
    if style == "defaults":
        return ThreadPlan(style, threads, inter_op_threads)
    if style != "model-zoo":
        raise ValueError(f"unknown threading style {style!r}")
    cores = allowed_cores(os.sched_getaffinity(0) if allowed is None else allowed)
    cpus = tuple(core_cpus[0] for _, core_cpus in cores)
    sockets = len({package for package, _ in cores})
    config = {AFFINITIES: affinity_string(cpus[1:])} if len(cpus) > 1 else {}
    return ThreadPlan(style, len(cpus), sockets, config, cpus)


def allowed_cores(allowed: set[int]) -> list[tuple[int, tuple[int, ...]]]:
    """(package, allowed CPUs) of every physical core with an allowed CPU, in compact
    order: by package, die and core id, as OpenMP's ``compact`` numbers them."""
    from affinity import read_topology

    topology = read_topology()
    out = []
    for core in sorted(topology.cores, key=lambda c: c.key):
        cpus = tuple(sorted(c for c in core.cpus if c in allowed))
        if cpus:
            out.append((core.package, cpus))
    if not out:  # affinity outside the online CPUs: cannot happen on a sane kernel
        out = [(0, (cpu,)) for cpu in sorted(allowed)]
    return out


def affinity_string(cpus: tuple[int, ...] | list[int]) -> str:
    """``session.intra_op_thread_affinities`` binding pool thread k to ``cpus[k]``: ORT
    numbers processors from 1."""
    return ";".join(str(cpu + 1) for cpu in cpus)


def parse_affinity_string(text: str) -> list[list[int]]:
    """The 0-based CPUs of each pool thread in an affinity string (``"2;3-4"``)."""
    out = []
    for entry in filter(None, text.split(";")):
        cpus: list[int] = []
        for part in entry.split(","):
            first, _, last = part.partition("-")
            cpus += range(int(first) - 1, int(last or first))
        out.append(cpus)
    return out


def session_options(plan: ThreadPlan) -> Any:
    """An ``onnxruntime.SessionOptions`` carrying ``plan``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = plan.intra_op_threads
    options.inter_op_num_threads = plan.inter_op_threads
    for key, value in plan.config.items():
        options.add_session_config_entry(key, value)
    return options


def read_back_options(session: Any) -> dict[str, Any]:
    """The options the session holds (its own copy, not what was asked)."""
    options = session.get_session_options()
    config = {}
    for key in (SPINNING, INTER_SPINNING, AFFINITIES):
        try:
            config[key] = options.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - ORT raises a bare Fail for an unset key
            continue
    return {"intra_op_num_threads": options.intra_op_num_threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
            "config": config}


def thread_cpus() -> dict[int, list[int]]:
    """Every thread of this process -> the CPUs it may run on (``Cpus_allowed_list`` in
    ``/proc/self/task/*/status``). A thread that ends while being read is left out."""
    from affinity import parse_cpulist

    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        out[int(tid)] = sorted(parse_cpulist(line.split(":", 1)[1].strip()))
                        break
        except OSError:
            continue
    return out
