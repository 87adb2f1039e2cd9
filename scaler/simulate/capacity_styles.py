"""Capacity and ``--threading``: bare metal as the study ran it is measured, not bought; and
what pinning gives against VMs.

Bare metal under ``defaults`` (each runtime out of the box: ORT's pool spins) or ``model-zoo``
(Intel Model Zoo's launcher: every instance binds thread k to CPU k, so unpinned instances
stack on the same cores) is what the study's 2.04x set VMs against. A planner who can choose
runs tuned bare metal or pinned partitions instead, so an unpinned layout under either style
is listed but never planned on unless asked (``allowed``, the styles a user names). A
partitioned layout under them is a layout like any other: each instance binds within its
own CPUs, as the study's VMs ran the launcher inside.

When the cohort holds pinned partitions and VMs the answer says whether a pinned layout
gives what the VMs give (its interval reaches the VMs' lower end): what the study bought
VMs for, without a hypervisor; with no VM measured, a recommended pinned layout says it is
what VMs would give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STUDY_STYLES = ("defaults", "model-zoo")  # not planned on for unpinned layouts unless asked
HELD_BACK = "not planned on"


def style_of(point: dict[str, Any]) -> str:
    return point.get("threading") or "tuned"


def check_allowed(allowed: tuple[str, ...]) -> None:
    from scaler.engines.base import THREADING_STYLES
    from scaler.errors import UsageError

    for style in allowed:
        if style not in THREADING_STYLES:
            raise UsageError(f"unknown threading style {style!r} to plan on: choose from "
                             f"{', '.join(THREADING_STYLES)}")


def held_back(row: dict[str, Any], allowed: tuple[str, ...]) -> bool:
    """An unpinned layout under a style of the study's bare metal that was not asked for."""
    style = row.get("threading") or "tuned"
    return bool(row.get("unpinned")) and style in STUDY_STYLES and style not in allowed


def held_back_note(rows: list[dict[str, Any]]) -> str | None:
    held = [r for r in rows if r.get("verdict") == HELD_BACK]
    if not held:
        return None
    styles = sorted({r["threading"] for r in held})
    return (f"{len(held)} bare-metal layout(s) under --threading {', '.join(styles)} (the "
            "study's bare metal: instances stacked on the same CPUs or spinning) listed, not "
            "planned on: tuned bare metal or pinned partitions serve the same machine better; "
            "ask for the style to plan on it")


def _virtual(row: dict[str, Any]) -> bool:
    from scaler.placements import find

    known = find(str(row.get("placement")))
    return bool(known and known.virtualized)


def pinned_note(rows: list[dict[str, Any]], best: dict[str, Any] | None,
                name: Callable[[dict[str, Any]], str]) -> str | None:
    """Whether a pinned layout gives what VMs would (``name``: a row's layout as text)."""
    usable = [r for r in rows if r.get("meets_bound") and r.get("planning_ips") is not None
              and r.get("verdict") not in (HELD_BACK, "reference only")]
    vms = [r for r in usable if _virtual(r)]
    pins = [r for r in usable if not _virtual(r) and not r.get("unpinned")]
    if not pins:
        return None
    pin = max(pins, key=lambda r: r["planning_ips"])
    if vms:
        vm = max(vms, key=lambda r: r["planning_ips"])
        top = (pin.get("ci95_ips") or [pin["throughput_ips"]] * 2)[1]
        if top < vm["planning_ips"]:
            return None
        return (f"{name(pin)} gives what VMs would: {_ips(pin)} images/s against "
                f"{name(vm)} {_ips(vm)} (no hypervisor needed for it)")
    if best is pin:
        return ("the recommended layout is pinned partitions (each instance on its own cores "
                "and memory): what VMs would give, without a hypervisor")
    return None


def _ips(r: dict[str, Any]) -> str:
    ci = r.get("ci95_ips")
    return f"{r['throughput_ips']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def named(placement: str, row: dict[str, Any]) -> str:
    """The placement with its style unless that is ``tuned``."""
    style = row.get("threading") or "tuned"
    return placement if style == "tuned" else f"{placement}-{style}"
