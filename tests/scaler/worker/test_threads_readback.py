"""What a worker reads back about its threads (``scaler.worker.threads``), from ``/proc`` and
``/sys`` files written by the test and from thread tables written by hand: which threads
count as compute threads, which are bound, which CPU each core binds to. The two binding
tests move real threads of this process (started by the test) and read them back with
``os.sched_getaffinity``; nothing depends on time."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from scaler.worker.threads import (
    bind_compact,
    compact_cores,
    cpus_of,
    pin_every_thread,
    read_back,
    snapshot,
)

HZ = os.sysconf("SC_CLK_TCK")


def stat_line(tid: int, comm: str, utime: int, stime: int) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    return f"{tid} ({comm}) S 1 1 1 0 -1 4194560 10 0 0 0 {utime} {stime} 0 0 20 0 1 0\n"


def status_text(name: str, cpus: str | None) -> str:
    lines = [f"Name:\t{name}", "Umask:\t0022", "State:\tS (sleeping)", "Cpus_allowed:\tf"]
    if cpus is not None:
        lines.append(f"Cpus_allowed_list:\t{cpus}")
    return "\n".join([*lines, "Mems_allowed_list:\t0", ""])


def write_task(root, tid: int, name: str, cpus: str | None, utime: int, stime: int,
               stat: str | None = None) -> None:
    folder = root / str(tid)
    folder.mkdir()
    (folder / "status").write_text(status_text(name, cpus))
    (folder / "stat").write_text(stat if stat is not None else stat_line(tid, name, utime, stime))


def test_snapshot_reads_name_cpus_and_cpu_time_of_each_thread_in_tid_order(tmp_path):
    """Tasks 12 and 3 (3 first: numeric order, not text order): the name after ``Name:``
    (a colon inside kept), ``Cpus_allowed_list`` (not the ``Cpus_allowed`` mask), and
    utime + stime ticks in seconds: 150 + 50 ticks = 200 / HZ s; a command name holding
    ``) `` does not shift the fields; a task without ``Cpus_allowed_list`` or ``Name`` lines
    has no CPUs and no name."""
    write_task(tmp_path, 12, "pool:1", "0-3", 150, 50)
    write_task(tmp_path, 3, "main", "2", 7, 0, stat=stat_line(3, "a) b (c) 9 9", 7, 0))
    write_task(tmp_path, 40, "old", None, 0, 1)
    status = tmp_path / "40" / "status"
    status.write_text(status.read_text().replace("Name:\told\n", ""))
    assert snapshot(str(tmp_path)) == [
        {"tid": 3, "name": "main", "cpus": "2", "cpu_s": round(7 / HZ, 3)},
        {"tid": 12, "name": "pool:1", "cpus": "0-3", "cpu_s": round(200 / HZ, 3)},
        {"tid": 40, "name": "", "cpus": "", "cpu_s": round(1 / HZ, 3)},
    ]


def test_snapshot_leaves_out_a_thread_that_ended_or_reads_short(tmp_path):
    """A task folder without ``stat`` (the thread ended between two reads) and one whose
    ``stat`` has no ``)`` are left out; the others stay."""
    write_task(tmp_path, 5, "gone", "0", 1, 1)
    (tmp_path / "5" / "stat").unlink()
    write_task(tmp_path, 6, "cut", "0", 1, 1, stat="6 (cut")
    write_task(tmp_path, 7, "ok", "1", 3, 4)
    assert snapshot(str(tmp_path)) == [{"tid": 7, "name": "ok", "cpus": "1",
                                        "cpu_s": round(7 / HZ, 3)}]


@contextmanager
def sleeping_threads(count: int) -> Iterator[list[int]]:
    """``count`` Python threads of this process that wait until the block ends: their tids."""
    stop = threading.Event()
    started = [threading.Thread(target=stop.wait, args=(30,), daemon=True) for _ in range(count)]
    for t in started:
        t.start()
    try:
        yield [t.native_id for t in started]
    finally:
        stop.set()
        for t in started:
            t.join(5)


def row(tid: int, cpus: str, cpu_s: float) -> dict:
    return {"tid": tid, "name": f"t{tid}", "cpus": cpus, "cpu_s": cpu_s}


def test_compute_threads_are_those_that_worked_since_before_but_the_workers_own():
    """Process on CPUs 0-3. Since ``before``: 901 grew 1.0 -> 2.5 s (compute, bound to CPU 2),
    902 did not grow (not compute), 903 is new with 0.2 s (compute, on all four CPUs: not
    bound), 904 new with no CPU time (not compute), 905 grew but shows no CPUs (compute,
    not bound: unknown); this process's main thread worked (it runs the queries: compute,
    bound to CPU 1 here), a Python thread of the worker worked but is the worker's own
    (not compute)."""
    main = threading.main_thread().native_id
    with sleeping_threads(1) as (own,):
        table = [row(901, "2", 2.5), row(902, "0-3", 1.0), row(903, "0-3", 0.2),
                 row(904, "3", 0.0), row(905, "", 0.7), row(main, "1", 5.0),
                 row(own, "0", 9.0)]
        before = [row(901, "2", 1.0), row(902, "0-3", 1.0), row(905, "", 0.1),
                  row(main, "1", 4.0), row(own, "0", 1.0)]
        back = read_back((3, 1, 0, 2), before, table)
    assert back == {"process_cpus": "0-3", "threads": table,
                    "compute_tids": [901, 903, 905, main],
                    "bound_cpus": ["2", "1"], "per_thread_bound": True, "bound_by": "runtime"}


def test_without_before_every_thread_that_used_cpu_time_is_a_compute_thread():
    """No earlier table: threads with CPU time count, the one with none does not; none is
    bound to fewer CPUs than the process's (CPUs 4-5): nothing bound, by nobody."""
    table = [row(10, "4-5", 0.01), row(11, "4-5", 0.0), row(12, "4-5", 3.0)]
    assert read_back((4, 5), None, table) == {
        "process_cpus": "4-5", "threads": table, "compute_tids": [10, 12], "bound_cpus": [],
        "per_thread_bound": False, "bound_by": None}


def test_read_back_reads_this_process_when_no_table_is_given():
    """No table: the read-back lists this process's own threads, its main thread included."""
    back = read_back(tuple(sorted(os.sched_getaffinity(0))))
    assert {t["tid"] for t in back["threads"]} >= {os.getpid()}


def write_core(root, cpu: int, package: int | str | None, core: int | str | None) -> None:
    topo = root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
    topo.mkdir(parents=True)
    if package is not None:
        (topo / "physical_package_id").write_text(f"{package}\n")
    if core is not None:
        (topo / "core_id").write_text(f"{core}\n")


def test_compact_cores_take_the_first_cpu_of_each_core_socket_by_socket(tmp_path):
    """Socket 0: core 0 = CPUs 0 and 4 (SMT), core 1 = CPUs 1 and 5; socket 1: core 0 =
    CPUs 2 and 6. Asked in any order: one CPU per core, the lowest, socket 0's cores first
    (0, 1) then socket 1's (2); core ids compared as numbers (core 10 after core 9)."""
    for cpu, package, core in [(0, 0, 0), (4, 0, 0), (1, 0, 1), (5, 0, 1), (2, 1, 0), (6, 1, 0)]:
        write_core(tmp_path, cpu, package, core)
    assert compact_cores((6, 5, 4, 2, 1, 0), str(tmp_path)) == [0, 1, 2]
    assert compact_cores((4, 5), str(tmp_path)) == [4, 5]
    other = tmp_path / "other"
    write_core(other, 0, 0, 10)
    write_core(other, 1, 0, 9)
    assert compact_cores((0, 1), str(other)) == [1, 0]


def test_a_cpu_without_readable_topology_is_its_own_core_ahead_of_the_known_ones(tmp_path):
    """CPU 3 has no topology files and CPU 7 an unreadable core id: each counts as its own
    core (package -1, so before socket 0's CPU 0); no CPU at all gives no core."""
    write_core(tmp_path, 0, 0, 0)
    write_core(tmp_path, 7, 0, "x")
    assert compact_cores((7, 3, 0), str(tmp_path)) == [3, 7, 0]
    assert compact_cores((), str(tmp_path)) == []


def test_cpus_of_reads_a_cpu_list_and_gives_nothing_for_an_unreadable_one():
    """``0-2,5`` is CPUs 0, 1, 2, 5; an empty or malformed list is no CPU."""
    assert cpus_of("0-2,5") == (0, 1, 2, 5)
    assert cpus_of("") == ()
    assert cpus_of("two") == ()


def two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("binding a thread to one CPU of several needs two CPUs")
    return cpus[0], cpus[1]


def test_bind_compact_puts_thread_k_on_core_k_round_robin_and_reads_it_back(tmp_path):
    """A hand-made topology giving each of this process's two lowest CPUs (lo < hi) its own
    core, hi's core first (core 0, lo's is core 1: the tree given is read, not /sys); three
    compute threads of this process (started by the test) and one that ended (tid not
    alive: skipped, it still takes its turn): thread 0 on the first core's CPU (hi), the
    ended one's turn passes, thread 2 on the first again (2 mod 2), thread 3 on the second
    (lo). The read-back shows those CPUs, bound by scaler; the main thread is never moved."""
    lo, hi = two_cpus()
    write_core(tmp_path, hi, 0, 0)
    write_core(tmp_path, lo, 0, 1)
    main_cpus = os.sched_getaffinity(0)
    with sleeping_threads(3) as (t0, t2, t3):
        readback = {"process_cpus": f"{lo}-{hi}" if hi == lo + 1 else f"{lo},{hi}",
                    "compute_tids": [t0, 2**22 + 1, t2, t3], "threads": [], "note": "kept"}
        back = bind_compact(readback, (lo, hi), str(tmp_path))
        assert os.sched_getaffinity(t0) == {hi} and os.sched_getaffinity(t2) == {hi}
        assert os.sched_getaffinity(t3) == {lo}
    expected = {t0: str(hi), t2: str(hi), t3: str(lo)}
    assert back["bound_cpus"] == [expected[t] for t in sorted(expected)]
    assert back["per_thread_bound"] is True
    assert back["bound_by"] == "scaler, by thread id after warm-up"
    assert back["note"] == "kept" and back["compute_tids"] == readback["compute_tids"]
    assert {t0, t2, t3} <= {t["tid"] for t in back["threads"]}
    assert os.sched_getaffinity(0) == main_cpus


def test_bind_compact_of_threads_that_stay_on_all_cpus_reads_nothing_bound(tmp_path):
    """One core holding both CPUs, the process's CPU list naming that one CPU only: the
    thread lands on the CPU the process list names, so it reads as not bound, by nobody."""
    a, b = two_cpus()
    write_core(tmp_path, a, 0, 0)
    write_core(tmp_path, b, 0, 0)
    with sleeping_threads(1) as (t0,):
        back = bind_compact({"process_cpus": str(a), "compute_tids": [t0]}, (a, b),
                            str(tmp_path))
        assert os.sched_getaffinity(t0) == {a}
    assert back["bound_cpus"] == [] and back["per_thread_bound"] is False
    assert back["bound_by"] is None


def test_pin_every_thread_confines_each_listed_thread_and_skips_ended_ones(tmp_path):
    """A task folder listing two live threads of this process and two that are not alive:
    both live threads end up on the one CPU asked for, whatever the listing order."""
    a, _ = two_cpus()
    with sleeping_threads(2) as (t0, t1):
        for tid in (2**22 + 1, t0, 2**22 + 2, t1):
            (tmp_path / str(tid)).mkdir()
        pin_every_thread((a,), str(tmp_path))
        assert os.sched_getaffinity(t0) == {a} and os.sched_getaffinity(t1) == {a}


def test_the_default_topology_is_the_real_sys(tmp_path):
    """Without a sysfs root, /sys is read: this process's lowest CPU is known there, CPU 4094
    is not (its own core, package -1, so first). Binding two threads of this process by that
    order: thread 0 to CPU 4094 fails (no such CPU: skipped, left alone), thread 1 goes to
    the lowest CPU."""
    far, low = 4094, min(os.sched_getaffinity(0))
    assert compact_cores((low, far)) == [far, low]
    with sleeping_threads(2) as (t0, t1):
        everywhere = os.sched_getaffinity(t0)
        bind_compact({"process_cpus": "x", "compute_tids": [t0, t1]}, (low, far))
        assert os.sched_getaffinity(t0) == everywhere and os.sched_getaffinity(t1) == {low}


def test_pin_every_thread_reads_this_process_by_default():
    """Without a task folder every thread of this process is confined: a thread the test
    bound to one CPU is widened to all of this process's CPUs (the main thread's, unchanged)."""
    a, _ = two_cpus()
    everywhere = os.sched_getaffinity(0)
    with sleeping_threads(1) as (t0,):
        os.sched_setaffinity(t0, {a})
        pin_every_thread(tuple(everywhere))
        assert os.sched_getaffinity(t0) == everywhere
    assert os.sched_getaffinity(0) == everywhere
