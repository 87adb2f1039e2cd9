"""How ``show`` says a group's thread placement and spin (``scaler.threadreport``)."""

from __future__ import annotations

from scaler import threadreport, threadstyles


def inst(process: str, bound: list[str], share: float | None = 0.0) -> dict:
    return {"thread_readback": {"process_cpus": process, "bound_cpus": bound,
                                "bound_by": "runtime" if bound else None},
            "spin": {"share": share}}


def test_stacking_kinds():
    kind = lambda insts: threadreport.stacking(insts)["kind"]  # noqa: E731
    assert kind([inst("0-1", ["0", "1"]), inst("0-1", ["0", "1"])]) == "stacked"
    assert kind([inst("0-1", ["0", "1"])]) == "bound"
    assert kind([inst("0-1", []), inst("0-1", [])]) == "unbound"
    assert kind([inst("0", []), inst("1", [])]) == "partitioned"
    assert kind([inst("0-1", ["0", "1"]), inst("0-1", ["1", "0"])]) == "overlapping"
    assert kind([{"index": 0}]) == "unknown"


def test_group_line_says_stacking_and_the_largest_spin():
    group = {"placement": "shared", "threading": "model-zoo", "series": "shared-model-zoo",
             "instances": 2,
             "per_instance": [inst("0-1", ["0", "1"], 0.63), inst("0-1", ["0", "1"], 0.2)]}
    line = threadreport.group_line(group)
    assert line == ("threads shared-model-zoo x2 (threading model-zoo): compute threads of 2 "
                    "instances on CPUs 0,1 (stacked: thread k of every instance on CPU k), "
                    "bound by runtime; spin 63% of idle CPU time")
    assert threadreport.group_line({"per_instance": [{"index": 0}]}) is None  # older run


def test_series_names_and_labels():
    assert threadstyles.series_name("shared", "tuned", ("tuned",)) == "shared"
    assert threadstyles.series_name("shared", "tuned", ("tuned", "defaults")) == "shared-tuned"
    assert threadstyles.series_name("pinned", "model-zoo", ("model-zoo",)) == "pinned-model-zoo"
    assert threadstyles.label({"placement": "shared", "threading": "tuned"}) == "shared"
    assert threadstyles.label({"placement": "shared", "threading": "defaults"}) == \
        "shared-defaults"
    assert threadstyles.label({"placement": "shared", "series": "shared-tuned"}) == \
        "shared-tuned"
    assert threadstyles.parse_threading(" tuned , model-zoo") == ("tuned", "model-zoo")
