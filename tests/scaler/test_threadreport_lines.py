"""Every kind of thread placement ``scaler show`` reports (``scaler.threadreport``), each
from read-backs written by hand, with the line a reader gets."""

from __future__ import annotations

from scaler.threadreport import group_line, spin_share, stacking, thread_lines


def inst(process, bound, share=None, by=None):
    out = {"thread_readback": {"process_cpus": process, "bound_cpus": bound}}
    if by:
        out["thread_readback"]["bound_by"] = by
    if share is not None:
        out["spin"] = {"share": share}
    return out


def test_stacking_names_the_cpus_of_each_kind():
    assert stacking([inst("0-1", ["0", "1"]), inst("0-1", ["0", "1"])]) == {
        "kind": "stacked", "cpus": ["0", "1"]}
    assert stacking([inst("0-3", ["2"])]) == {"kind": "bound", "cpus": ["2"]}
    assert stacking([inst("0", []), inst("1", None)]) == {"kind": "partitioned",
                                                         "cpus": ["0", "1"]}
    assert stacking([inst("0-1", [])]) == {"kind": "unbound", "cpus": ["0-1"]}  # one alone
    assert stacking([inst("0-1", []), inst("1-2", [])]) == {"kind": "unbound",
                                                            "cpus": ["0-1", "1-2"]}
    # bound per thread inside disjoint partitions: partitioned
    assert stacking([inst("0-1", ["0", "1"]), inst("2-3", ["2", "3"])]) == {
        "kind": "partitioned", "cpus": ["0-1", "2-3"]}
    # one bound, one not, on the same CPUs: overlapping
    assert stacking([inst("0-1", ["0"]), inst("0-1", [])]) == {"kind": "overlapping",
                                                               "cpus": [["0"], []]}
    assert stacking([]) == {"kind": "unknown", "cpus": []}
    assert stacking([inst("0", []), {"index": 1}]) == {"kind": "unknown", "cpus": []}


def test_partitions_must_be_disjoint_readable_and_not_empty():
    assert stacking([inst("0-1", []), inst("1-2", [])])["kind"] == "unbound"  # CPU 1 shared
    assert stacking([inst("0", []), inst("", [])])["kind"] == "unbound"  # nothing read
    assert stacking([inst("0", []), inst("x", [])])["kind"] == "unbound"  # unreadable
    assert stacking([inst("0", []), inst("1", []), inst("2-3", [])])["kind"] == "partitioned"
    assert stacking([inst("0", ["0"]), inst("0", ["1"])])["kind"] == "overlapping"


def test_spin_share_is_the_largest_measured():
    assert spin_share([inst("0", [], 0.2), inst("1", [], 0.63), inst("2", [])]) == 0.63
    assert spin_share([inst("0", [], 0.0)]) == 0.0
    assert spin_share([inst("0", []), {"spin": None}]) is None
    assert spin_share([]) is None


def group(insts, **extra):
    return {"placement": "pinned", "instances": len(insts), "per_instance": insts, **extra}


def test_group_lines_by_hand():
    assert group_line(group([inst("0-1", ["0", "1"], 0.5)])) == (
        "threads pinned x1 (threading tuned): compute threads on CPUs 0,1 (thread k on CPU k); "
        "spin 50% of idle CPU time")
    assert group_line(group([inst("0", [], by="runtime"), inst("1", [], by="scaler")],
                            threading="defaults")) == (
        "threads pinned-defaults x2 (threading defaults): each of 2 instance(s) inside its own "
        "CPUs (0; 1), bound by runtime and scaler; spin not measured")
    assert group_line(group([inst("0-1", []), inst("0-1", [])], placement="shared")) == (
        "threads shared x2 (threading tuned): compute threads not pinned per thread (CPUs "
        "0-1; 0-1); spin not measured")
    assert group_line(group([inst("0-1", ["0"]), inst("0-1", ["1", "0"])])) == (
        "threads pinned x2 (threading tuned): compute threads bound to overlapping CPUs "
        "[['0'], ['1', '0']]; spin not measured")
    assert group_line(group([inst("0", [], 0.004), {"index": 1}])) == (
        "threads pinned x2 (threading tuned): thread placement not read back; spin 0% of idle "
        "CPU time")
    assert group_line(group([])) is None
    assert group_line({"instances": 1}) is None


def test_thread_lines_keep_the_groups_that_read_back_in_order():
    a = group([inst("0", ["0"])], series="first")
    b = group([{"index": 0}])
    c = group([inst("1", ["1"])], series="second")
    assert [line.split(" x1")[0] for line in thread_lines([a, b, c])] == ["threads first",
                                                                           "threads second"]
    assert thread_lines([b]) == []


def test_every_partition_is_checked_against_all_before_it():
    # the third overlaps the first, not the second
    assert stacking([inst("0", []), inst("1", []), inst("0", [])])["kind"] == "unbound"
    assert stacking([inst("0", []), inst(None, [])])["kind"] == "unbound"  # not read back
