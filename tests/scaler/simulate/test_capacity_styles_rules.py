"""``capacity_styles``'s rules on hand-made candidate rows: which layouts are held back,
the notes' exact words, and when a pinned layout is said to give what VMs would."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.simulate.capacity_styles import (
    HELD_BACK,
    check_allowed,
    held_back,
    held_back_note,
    named,
    pinned_note,
    style_of,
)


def name(row):
    return f"<{row['placement']} {row['throughput_ips']:g}>"


def row(placement, ips, ci=None, **extra):
    return {"placement": placement, "throughput_ips": ips, "planning_ips": ci[0] if ci else ips,
            "ci95_ips": ci, "meets_bound": True, "verdict": "meets", "unpinned": False,
            **extra}


def test_held_back_only_unpinned_study_styles_not_asked_for():
    assert held_back({"unpinned": True, "threading": "model-zoo"}, ())
    assert held_back({"unpinned": True, "threading": "defaults"}, ("model-zoo",))
    assert not held_back({"unpinned": True, "threading": "defaults"}, ("defaults",))
    assert not held_back({"unpinned": False, "threading": "model-zoo"}, ())
    assert not held_back({"unpinned": True, "threading": "tuned"}, ())
    assert not held_back({"unpinned": True}, ())  # no style recorded: tuned
    assert not held_back({"unpinned": True, "threading": None}, ("tuned",))
    assert not held_back({"threading": "model-zoo"}, ())


def test_styles_are_named_unless_tuned():
    assert style_of({}) == "tuned" and style_of({"threading": None}) == "tuned"
    assert style_of({"threading": "defaults"}) == "defaults"
    assert named("shared", {}) == "shared"
    assert named("shared", {"threading": "tuned"}) == "shared"
    assert named("pinned", {"threading": "model-zoo"}) == "pinned-model-zoo"


def test_an_unknown_style_names_the_choices():
    check_allowed(("tuned", "defaults", "model-zoo"))
    with pytest.raises(UsageError) as raised:
        check_allowed(("tuned", "zoo"))
    assert str(raised.value) == ("unknown threading style 'zoo' to plan on: choose from "
                                 "tuned, defaults, model-zoo")


def test_the_held_back_note_counts_and_names_the_styles():
    rows = [{"verdict": HELD_BACK, "threading": "model-zoo"},
            {"verdict": HELD_BACK, "threading": "defaults"},
            {"verdict": HELD_BACK, "threading": "model-zoo"}, {"verdict": "meets"}]
    assert held_back_note(rows) == (
        "3 bare-metal layout(s) under --threading defaults, model-zoo (the study's bare metal: "
        "instances stacked on the same CPUs or spinning) listed, not planned on: tuned bare "
        "metal or pinned partitions serve the same machine better; ask for the style to plan "
        "on it")
    assert held_back_note([{"verdict": "meets"}]) is None


def test_a_pinned_layout_reaching_the_best_vm_gives_what_vms_would():
    pin = row("pinned", 100.0, [90.0, 120.0])
    vms = [row("vm", 80.0, [70.0, 85.0]), row("vm", 115.0, [110.0, 118.0])]
    # the pinned interval's top (120) reaches the best VM's lower end (110)
    assert pinned_note([pin, *vms], None, name) == (
        "<pinned 100> gives what VMs would: 100.0 [90.0, 120.0] images/s against <vm 115> "
        "115.0 [110.0, 118.0] (no hypervisor needed for it)")
    short = row("pinned", 100.0, [90.0, 105.0])  # 105 < 110: not shown to reach them
    assert pinned_note([short, *vms], None, name) is None
    single = row("pinned", 110.0)  # one repeat: its value is its top
    assert pinned_note([single, *vms], None, name).startswith("<pinned 110> gives what VMs "
                                                              "would: 110.0 images/s")
    assert pinned_note([row("pinned", 109.0), *vms], None, name) is None


def test_only_usable_rows_take_part():
    pin = row("pinned", 100.0)
    for vm in (row("vm", 200.0, meets_bound=False), row("vm", 200.0, verdict=HELD_BACK),
               row("vm", 200.0, verdict="reference only"),
               {**row("vm", 200.0), "planning_ips": None}):
        # without the faster VM the pinned layout is compared with the slower one
        note = pinned_note([pin, vm, row("vm", 50.0)], None, name)
        assert note is not None and "<vm 50>" in note
    # an unpinned layout is no pinned partition; the best pinned one is compared
    assert pinned_note([row("shared", 300.0, unpinned=True), row("vm", 150.0)], None,
                       name) is None
    assert "<pinned 160>" in pinned_note([pin, row("pinned", 160.0), row("vm", 150.0)], None,
                                         name)


def test_without_vms_only_a_recommended_pinned_layout_is_named():
    pin, other = row("pinned", 100.0), row("pinned", 50.0)
    assert pinned_note([pin, other], pin, name) == (
        "the recommended layout is pinned partitions (each instance on its own cores and "
        "memory): what VMs would give, without a hypervisor")
    assert pinned_note([pin, other], other, name) is None
    assert pinned_note([row("shared", 1.0, unpinned=True)], None, name) is None
