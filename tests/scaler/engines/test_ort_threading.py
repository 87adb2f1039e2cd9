"""How the onnxruntime engine expresses each ``--threading`` style (``scaler.engines.
ort_threading``), in this process: the options each style asks for, ORT's 1-based affinity
strings, and what a real session holds afterwards. The model-zoo plan's expected cores are
read from ``/sys`` by the test itself; CPUs past the last online one stand for an affinity
the topology does not know."""

from __future__ import annotations

import os

import pytest

from scaler.engines import ort_threading as ot

SPIN, INTER_SPIN = "session.intra_op.allow_spinning", "session.inter_op.allow_spinning"
AFFINITIES = "session.intra_op_thread_affinities"
FAR = 4094  # a CPU number no test machine has online


def test_tuned_sleeps_when_idle_with_the_partitions_counts():
    """tuned: the partition's counts, both pools told not to spin, no binding."""
    assert ot.plan_threads("tuned", 3, 2) == ot.ThreadPlan(
        "tuned", 3, 2, {SPIN: "0", INTER_SPIN: "0"}, ())


def test_defaults_set_the_counts_only():
    """defaults: the counts and nothing else (ORT spins and binds as it would)."""
    assert ot.plan_threads("defaults", 4, 1) == ot.ThreadPlan("defaults", 4, 1, {}, ())


def test_an_unknown_style_is_refused():
    with pytest.raises(ValueError, match="^unknown threading style 'spin'$"):
        ot.plan_threads("spin", 1, 1)


def test_model_zoo_on_one_cpu_is_one_unbound_pool_thread():
    """Allowed CPU 0 only: one core, one socket, thread 0 (the caller) on CPU 0 and no pool
    thread to bind (no affinity entry); the partition's counts are ignored."""
    assert ot.plan_threads("model-zoo", 8, 4, {0}) == ot.ThreadPlan(
        "model-zoo", 1, 1, {}, (0,))


def test_model_zoo_outside_the_topology_gives_each_cpu_its_own_core():
    """CPUs the topology does not list (past the online ones): each is its own core on
    socket 0, in order; the pool thread (thread 1) is bound to CPU 4095 = ORT's "4096"."""
    assert ot.plan_threads("model-zoo", 1, 1, {FAR + 1, FAR}) == ot.ThreadPlan(
        "model-zoo", 2, 1, {AFFINITIES: "4096"}, (FAR, FAR + 1))
    assert ot.allowed_cores({FAR + 1, FAR}) == [(0, (FAR,)), (0, (FAR + 1,))]


def sys_cores(cpus: set[int]) -> dict[tuple[int, int], list[int]]:
    """(package, core id) -> CPUs, read from /sys by the test."""
    out: dict[tuple[int, int], list[int]] = {}
    for cpu in sorted(cpus):
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        with open(f"{topo}/physical_package_id") as f, open(f"{topo}/core_id") as g:
            out.setdefault((int(f.read()), int(g.read())), []).append(cpu)
    return out


def test_model_zoo_takes_one_thread_per_allowed_core_from_the_topology():
    """Every CPU this process may use: one thread per physical core (its lowest CPU),
    inter-op threads = sockets; threads past the first bound 1-based to their cores; the
    default ``allowed`` is this process's affinity. A CPU outside the topology is dropped
    when the topology knows any allowed CPU."""
    allowed = os.sched_getaffinity(0)
    cores = sys_cores(allowed)
    firsts = tuple(cpus[0] for _, cpus in sorted(cores.items()))
    sockets = len({package for package, _ in cores})
    config = {AFFINITIES: ";".join(str(c + 1) for c in firsts[1:])} if len(firsts) > 1 else {}
    expected = ot.ThreadPlan("model-zoo", len(firsts), sockets, config, firsts)
    assert ot.plan_threads("model-zoo", 1, 1, set(allowed)) == expected
    assert ot.plan_threads("model-zoo", 1, 1) == expected
    assert ot.plan_threads("model-zoo", 1, 1, {*allowed, FAR}) == expected
    assert ot.allowed_cores(set(allowed)) == [(package, tuple(cpus)) for (package, _), cpus
                                              in sorted(cores.items())]


def test_model_zoo_reads_the_calling_threads_affinity_now():
    """This thread narrowed to its lowest CPU for the call (and widened again): the plan
    takes that one CPU, not the process's first affinity or another process's."""
    everywhere = os.sched_getaffinity(0)
    if len(everywhere) < 2:
        pytest.skip("narrowing the affinity needs two CPUs")
    low = min(everywhere)
    try:
        os.sched_setaffinity(0, {low})
        plan = ot.plan_threads("model-zoo", 4, 2)
    finally:
        os.sched_setaffinity(0, everywhere)
    assert plan == ot.ThreadPlan("model-zoo", 1, 1, {}, (low,))


def test_allowed_cores_keep_only_the_allowed_cpus_of_a_core():
    """One allowed CPU: its core appears with that CPU alone."""
    cpu = min(os.sched_getaffinity(0))
    ((package, _),) = sys_cores({cpu})
    assert ot.allowed_cores({cpu}) == [(package, (cpu,))]


def test_affinity_strings_are_one_based_and_read_back_zero_based():
    """CPUs 1, 2, 5 are ORT's "2;3;6"; none is an empty string. Read back: single ids,
    ranges and lists, empty entries skipped."""
    assert ot.affinity_string([1, 2, 5]) == "2;3;6"
    assert ot.affinity_string((0,)) == "1"
    assert ot.affinity_string([]) == ""
    assert ot.parse_affinity_string("2;3-4,7") == [[1], [2, 3, 6]]
    assert ot.parse_affinity_string(";1;;2-2;") == [[0], [1]]
    assert ot.parse_affinity_string("") == []


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()


def test_a_session_holds_the_plans_options_and_reads_them_back():
    """A real ORT session on a one-node model made here, built from a plan with 2 intra and
    1 inter-op threads, spinning off and pool thread 1 bound to CPU 0 ("1"): the session's
    own options read back those counts and entries, ORT's sequential mode, and no entry for
    a key never set."""
    import onnxruntime as ort

    plan = ot.ThreadPlan("tuned", 2, 1, {SPIN: "0", AFFINITIES: "1"})
    options = ot.session_options(plan)
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.get_session_config_entry(SPIN) == "0"
    session = ort.InferenceSession(_identity_model(), options, providers=["CPUExecutionProvider"])
    back = ot.read_back_options(session)
    assert back["intra_op_num_threads"] == 2 and back["inter_op_num_threads"] == 1
    assert back["execution_mode"] == "ORT_SEQUENTIAL"
    assert back["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert back["config"] == {SPIN: "0", AFFINITIES: "1"}


def test_thread_cpus_lists_every_thread_with_its_allowed_cpus():
    """Every thread of this process with the CPUs the kernel says it may use (read here with
    ``os.sched_getaffinity`` per thread), sorted."""
    got = ot.thread_cpus()
    assert got == {int(tid): sorted(os.sched_getaffinity(int(tid)))
                   for tid in os.listdir("/proc/self/task")}
    assert os.getpid() in got
