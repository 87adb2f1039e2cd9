"""Binding, tested for real: a child process pinned by the code reports what it got."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from affinity import (
    BindError,
    bind,
    current_binding,
    format_cpulist,
    read_mempolicy,
    thread_env,
)
from affinity.bind import THREAD_ENV_KEYS

ROOT = Path(__file__).resolve().parents[2]


def in_child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("OMP_NUM_THREADS", "KMP_AFFINITY"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


REPORT = (
    "import json, os\n"
    "from affinity import bind, BindError\n"
    "try:\n"
    "    b = bind({args}).to_dict()\n"
    "except BindError as e:\n"
    "    b = {{'error': str(e)}}\n"
    "b['affinity'] = sorted(os.sched_getaffinity(0))\n"
    "b['env'] = {{k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS',"
    " 'TF_NUM_INTEROP_THREADS', 'KMP_AFFINITY', 'KMP_BLOCKTIME', 'KMP_SETTINGS')}}\n"
    "print(json.dumps(b))\n"
)


def test_child_pinned_to_cpu0_reports_it():
    got = in_child(REPORT.format(args="cpus=[0], nodes=[0]"))
    assert got["cpus"] == [0] and got["affinity"] == [0] and got["requested_cpus"] == [0]
    assert got["threads"] == 1 and got["nodes"] == [0]
    if got["memory_bound"]:
        assert got["memory_reason"] == "bound" and got["memory_policy"] == "bind:0"
    else:  # refused, as in many containers: recorded, not hidden
        assert got["memory_reason"] not in ("", "bound", "not requested")
    assert got["env"] == {
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "KMP_AFFINITY": "granularity=fine,compact,1,0",
        "KMP_BLOCKTIME": "1",
        "KMP_SETTINGS": "0",
    }


def test_refused_memory_policy_is_recorded_and_pinning_goes_on():
    got = in_child(REPORT.format(args="cpus=[0], nodes=[1000]"))  # no such node
    assert got["affinity"] == [0]
    assert got["memory_bound"] is False and "set_mempolicy refused" in got["memory_reason"]


def test_unpinned_keeps_affinity_and_sizes_threads_from_it():
    got = in_child(REPORT.format(args="None, threads=None, inter_op_threads=2"))
    allowed = sorted(os.sched_getaffinity(0))
    assert got["cpus"] == allowed and got["requested_cpus"] is None
    assert got["threads"] == len(allowed) and got["memory_reason"] == "not requested"
    assert got["env"]["KMP_AFFINITY"] == "disabled"
    assert got["env"]["TF_NUM_INTEROP_THREADS"] == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("cpus=[4095]", "cannot pin to CPUs 4095"),
        ("cpus=[0, 4095]", "asked for CPUs 0,4095 but the kernel allows only 0"),
        ("cpus=[]", "empty CPU list"),
    ],
)
def test_refused_cpus_are_bind_errors(args, message):
    got = in_child(REPORT.format(args=args))
    assert message in got["error"]


def test_current_binding_reads_without_changing_anything():
    before = os.sched_getaffinity(0)
    report = current_binding()
    assert set(report["cpus"]) == before == os.sched_getaffinity(0)
    assert report["memory_policy"].split(":")[0] in (
        "default",
        "bind",
        "preferred",
        "interleave",
        "local",
        "preferred_many",
        "weighted_interleave",
    )
    json.dumps(report)


def test_thread_env():
    assert thread_env(4)["OMP_NUM_THREADS"] == "4"
    assert thread_env(4, 2)["TF_NUM_INTEROP_THREADS"] == "2"
    assert thread_env(4, pinned=False)["KMP_AFFINITY"] == "disabled"
    with pytest.raises(BindError):
        thread_env(0)


# --- in this process, restored afterwards: the same calls, checked value by value -------
# (mutation testing maps a test to the code it runs in its own process only)

bind_module = sys.modules["affinity.bind"]
MPOL_DEFAULT = 0


@pytest.fixture
def restored(restored_affinity):
    """Put this process's affinity, thread variables (tests/affinity/conftest.py) and memory
    policy back after a test."""
    yield
    set_mempolicy = bind_module._SYSCALLS[platform.machine()][0]
    assert bind_module._syscall(set_mempolicy, MPOL_DEFAULT, None, 0) == ""
    assert read_mempolicy() == "default"


def kernel_binds_node0() -> bool:
    """Whether this kernel lets set_mempolicy(MPOL_BIND, node 0) through (containers may
    refuse), asked with ctypes directly rather than through the code under test."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    mask = (ctypes.c_ulong * 16)(1)
    number = bind_module._SYSCALLS[platform.machine()][0]
    ok = libc.syscall(ctypes.c_long(number), ctypes.c_long(2), mask, ctypes.c_long(1025)) == 0
    libc.syscall(ctypes.c_long(number), ctypes.c_long(MPOL_DEFAULT), None, ctypes.c_long(0))
    return ok


def test_bind_in_process_pins_binds_and_exports(restored):
    can_bind = kernel_binds_node0()
    got = bind([0], nodes=[0], threads=3, inter_op_threads=2)
    assert got.memory_bound == can_bind
    assert os.sched_getaffinity(0) == {0}
    assert got.cpus == (0,) and got.requested_cpus == (0,) and got.nodes == (0,)
    assert (got.threads, got.inter_op_threads) == (3, 2)
    assert {key: os.environ[key] for key in THREAD_ENV_KEYS} == thread_env(3, 2, pinned=True)
    policy = read_mempolicy()
    if got.memory_bound:
        assert (got.memory_reason, got.memory_policy, policy) == ("bound", "bind:0", "bind:0")
    else:  # a container refusing set_mempolicy: the reason says so
        assert got.memory_reason.startswith("set_mempolicy refused: ")
        assert got.memory_policy == policy
    assert got.to_dict() == {
        "cpus": [0], "cpulist": "0", "requested_cpus": [0], "nodes": [0],
        "memory_bound": got.memory_bound, "memory_reason": got.memory_reason,
        "memory_policy": got.memory_policy, "memory_migrated": got.memory_migrated,
        "threads": 3, "inter_op_threads": 2,
        "threading": "tuned",
    }
    # one node here: nothing to move (the two-node testbed guest reads the move back)
    assert got.memory_migrated == ("nothing to move (no other node)" if got.memory_bound else "")


def test_migrating_own_pages_says_why_not(tmp_path):
    from affinity.bind import migrate_own_pages

    assert migrate_own_pages((0,), str(tmp_path / "absent")).startswith("not moved")
    (tmp_path / "online").write_text("0\n")
    assert migrate_own_pages((0,), str(tmp_path / "online")) == "nothing to move (no other node)"


def test_bind_defaults_style_unsets_every_openmp_variable(restored):
    os.environ.update(KMP_BLOCKTIME="200", OMP_WAIT_POLICY="active", OMP_NUM_THREADS="7")
    got = bind(None, threads=2, threading="defaults")
    assert got.threading == "defaults" and got.threads == 2
    for key in bind_module.OPENMP_KEYS:
        assert key not in os.environ, key
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "2"


def test_bind_model_zoo_style_sizes_threads_from_cores_and_sockets(restored):
    got = bind(None, threads=5, inter_op_threads=3, threading="model-zoo")
    cores, sockets = bind_module.cores_and_sockets(got.cpus)
    assert (got.threads, got.inter_op_threads) == (cores, sockets)  # not the 5 and 3 asked
    assert os.environ["OMP_NUM_THREADS"] == str(cores)
    assert os.environ["TF_NUM_INTEROP_THREADS"] == str(sockets)
    assert os.environ["KMP_AFFINITY"] == "granularity=fine,compact,1,0"  # unpinned, still
    assert os.environ["KMP_BLOCKTIME"] == "1"


def test_cores_and_sockets_count_siblings_once(tmp_path):
    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (1, 0)]):
        topo = tmp_path / f"devices/system/cpu/cpu{cpu}/topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    assert bind_module.cores_and_sockets([0, 1, 2, 3], str(tmp_path)) == (3, 2)
    assert bind_module.cores_and_sockets([0, 1], str(tmp_path)) == (1, 1)
    assert bind_module.cores_and_sockets([9], str(tmp_path)) == (1, 1)  # unreadable: its own


def test_bind_in_process_without_cpus_or_nodes(restored):
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    got = bind(None)
    assert got.cpus == allowed and got.requested_cpus is None and got.nodes == ()
    assert got.threads == len(allowed) and got.inter_op_threads == 1
    assert (got.memory_bound, got.memory_reason, got.memory_policy) == (
        False, "not requested", "default")
    assert os.environ["KMP_AFFINITY"] == "disabled"
    assert os.environ["OMP_NUM_THREADS"] == str(len(allowed))
    assert got.to_dict()["requested_cpus"] is None
    assert got.to_dict()["cpulist"] == format_cpulist(allowed)


def test_bind_in_process_sorts_and_dedupes(restored):
    got = bind([0, 0], nodes=[0, 0])
    assert got.requested_cpus == (0,) and got.nodes == (0,) and got.threads == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cpus": []}, "^cannot pin to an empty CPU list$"),
    ({"cpus": [0], "nodes": []}, "^cannot bind memory to an empty node list$"),
    ({"cpus": [4095]}, "^cannot pin to CPUs 4095: "),
    ({"cpus": [0, 4095]}, "^asked for CPUs 0,4095 but the kernel allows only 0 "),
])
def test_bind_in_process_refusals(restored, kwargs, message):
    with pytest.raises(BindError, match=message):
        bind(**kwargs)


@pytest.mark.parametrize(("nodes", "reason"), [
    ([1024], "node numbers 1024 outside 0-1023"),
    ([-1, 0], "node numbers -1,0 outside 0-1023"),
    ([1000], "set_mempolicy refused: EINVAL (Invalid argument)"),
])
def test_memory_nodes_the_kernel_cannot_bind_are_recorded(restored, nodes, reason):
    got = bind([0], nodes=nodes)
    assert got.memory_bound is False and got.memory_reason == reason
    assert got.cpus == (0,) and got.memory_policy == "default"


@pytest.mark.parametrize(("mode", "nodes", "reads"), [
    (2 | 1 << 15, [0], "bind:0"),  # MPOL_BIND with MPOL_F_STATIC_NODES: the flag is masked
    (3, [0], "interleave:0"),
    (1, [0], "preferred:0"),
    (4, [], "local"),
])
def test_read_mempolicy_names_mode_and_nodes(restored, mode, nodes, reads):
    set_mempolicy = bind_module._SYSCALLS[platform.machine()][0]
    if bind_module._syscall(set_mempolicy, mode, bind_module._nodemask(nodes), 1025):
        pytest.skip("set_mempolicy refused here")
    assert read_mempolicy() == reads


def test_thread_env_exact():
    assert thread_env(4, 2, pinned=True) == {
        "OMP_NUM_THREADS": "4", "TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "2",
        "KMP_AFFINITY": "granularity=fine,compact,1,0", "KMP_BLOCKTIME": "1",
        "KMP_SETTINGS": "0"}
    assert thread_env(1) == thread_env(1, 1, True)
    assert thread_env(1, pinned=False)["KMP_AFFINITY"] == "disabled"
    assert thread_env(2, 1, pinned=False, style="defaults") == {
        "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}
    assert thread_env(2, 1, pinned=False, style="model-zoo") == thread_env(2, 1, pinned=True)
    assert thread_env(2, 1, pinned=False, style="tuned") == thread_env(2, 1, pinned=False)
    with pytest.raises(BindError, match="^unknown threading style 'spin'; choose from tuned, "
                                        "defaults, model-zoo$"):
        thread_env(1, style="spin")
    for bad in ((0, 1), (1, 0), (-2, 1)):
        with pytest.raises(BindError, match=f"^thread counts must be at least 1, got "
                                            f"{bad[0]} and {bad[1]}$"):
            thread_env(*bad)


def test_nodemask_bits():
    mask = bind_module._nodemask([0, 3, 64, 1023])
    bits = bind_module._ULONG_BITS
    assert len(mask) == 1024 // bits
    assert mask[0] == 0b1001 and mask[64 // bits] & 1 and mask[1023 // bits] >> (1023 % bits)
    assert sum(bin(word).count("1") for word in mask) == 4


def test_syscall_reports_the_errno_of_each_call():
    if platform.machine() != "x86_64":
        pytest.skip("syscall numbers below are x86_64's")
    set_mempolicy, close, getpid = 238, 3, 39
    assert bind_module._syscall(set_mempolicy, 99, None, 0) == "EINVAL (Invalid argument)"
    assert bind_module._syscall(close, -1) == "EBADF (Bad file descriptor)"
    assert bind_module._syscall(set_mempolicy, 99, None, 0) == "EINVAL (Invalid argument)"
    assert bind_module._syscall(getpid) == ""


def test_current_binding_reports_the_thread_variables(restored):
    for key in THREAD_ENV_KEYS:
        os.environ.pop(key, None)
    os.environ["OMP_NUM_THREADS"] = "7"
    os.environ["UNRELATED"] = "x"
    try:
        report = current_binding()
    finally:
        os.environ.pop("UNRELATED")
    assert report["env"] == {"OMP_NUM_THREADS": "7"}
    assert report["cpulist"] == format_cpulist(os.sched_getaffinity(0))
    assert report["memory_policy"] == read_mempolicy() == "default"
    os.sched_setaffinity(0, {0})  # its own affinity, not another process's
    assert current_binding()["cpus"] == [0]
