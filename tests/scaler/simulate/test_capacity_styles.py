"""Capacity and ``--threading``: bare metal as the study ran it is listed, never planned on
unless asked; and the answer says when a pinned layout gives what VMs would. Hand-written
run documents (tests/scaler/simulate/test_capacity.py's), figures chosen so that the rule
decides: the study-style layout is always the fastest one that meets the bound."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.simulate.capacity import layout_text, lines, plan_capacity
from tests.scaler.simulate.test_capacity import group, run


def groups_with(style):
    return [group(0, "shared", 2, 80.0, 20.0, threading="tuned"),
            group(1, "shared", 2, 200.0, 20.0, threading=style),  # fastest, meets the bound
            group(2, "pinned", 2, 100.0, 20.0, cpus_each=4, threading=style)]


@pytest.mark.parametrize("style", ["model-zoo", "defaults"])
def test_unpinned_study_styles_are_listed_not_planned_on_unless_asked(tmp_path, style):
    runs = [run(tmp_path, groups_with(style))]
    (c,) = plan_capacity(runs, 100.0, 50.0)["cohorts"]
    best = c["recommendation"]
    # the pinned layout under the same style is a layout like any other: each instance binds
    # inside its own CPUs
    assert (best["placement"], best["threading"], best["planning_ips"]) == ("pinned", style,
                                                                           100.0)
    verdicts = {(r["placement"], r["threading"]): r["verdict"] for r in c["candidates"]}
    assert verdicts[("shared", style)] == "not planned on"
    assert verdicts[("shared", "tuned")] == "meets"
    assert any(n.startswith(f"1 bare-metal layout(s) under --threading {style}")
               for n in c["notes"])
    (c,) = plan_capacity(runs, 100.0, 50.0, allow_styles=(style,))["cohorts"]
    assert (c["recommendation"]["placement"], c["recommendation"]["threading"]) == (
        "shared", style)
    assert not any("not planned on" in n or "bare-metal layout(s)" in n for n in c["notes"])


def test_a_layout_is_named_with_its_style_unless_tuned(tmp_path):
    (c,) = plan_capacity([run(tmp_path, groups_with("model-zoo"))], 100.0, 50.0)["cohorts"]
    names = sorted(layout_text(r) for r in c["candidates"])
    assert names == ["2 x pinned-model-zoo (4 cores each)", "2 x shared (unpinned)",
                     "2 x shared-model-zoo (unpinned)"]
    text = "\n".join(lines(plan_capacity([run(tmp_path, groups_with("model-zoo"))], 100.0,
                                         50.0)))
    assert "2 x shared-model-zoo (unpinned)" in text and "not planned on" in text


def test_a_pinned_layout_that_reaches_the_vms_says_it_gives_what_vms_would(tmp_path):
    groups = [group(0, "pinned", 2, 100.0, 20.0, cpus_each=4),
              group(1, "vm", 2, 100.0, 20.0, cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, groups)], 100.0, 50.0)["cohorts"]
    assert ("2 x pinned (4 cores each) gives what VMs would: 100.0 images/s against 2 x vm "
            "(4 cores each) 100.0 (no hypervisor needed for it)") in c["notes"]
    slower = [group(0, "pinned", 2, 90.0, 20.0, cpus_each=4),
              group(1, "vm", 2, 100.0, 20.0, cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, slower)], 100.0, 50.0)["cohorts"]
    assert not any("gives what VMs would" in n for n in c["notes"])


def test_a_recommended_pinned_layout_without_vms_is_what_vms_would_give(tmp_path):
    groups = [group(0, "shared", 2, 80.0, 20.0), group(1, "pinned", 2, 100.0, 20.0,
                                                      cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, groups)], 100.0, 50.0)["cohorts"]
    assert c["recommendation"]["placement"] == "pinned"
    assert any(n.startswith("the recommended layout is pinned partitions") for n in c["notes"])
    shared_wins = [group(0, "shared", 2, 120.0, 20.0), group(1, "pinned", 2, 100.0, 20.0,
                                                             cpus_each=4)]
    (c,) = plan_capacity([run(tmp_path, shared_wins)], 100.0, 50.0)["cohorts"]
    assert not any("pinned partitions" in n for n in c["notes"])


def test_an_unknown_style_to_plan_on_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown threading style 'zoo'"):
        plan_capacity([run(tmp_path, groups_with("model-zoo"))], 100.0, 50.0,
                      allow_styles=("zoo",))
