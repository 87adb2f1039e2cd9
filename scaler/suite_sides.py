"""The two sides of the suite's comparisons: bare metal, and the VM-like placements set
against it, as each placement declares (``Placement.suite_side``, ``suite_only_when_real``,
``emulation``); never inferred from a placement's name or notes.

Used by ``scaler suite`` to choose its runs (:func:`vm_like`), by the claims
(``scaler.suite``, ``scaler.suite_study``) and by the report (``scaler.report.study``) to
read them back (:func:`bare`, :func:`vm_side`, :func:`virtualized`, :func:`stands_in`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.settings import Settings

BASELINE = "baseline"  # bare metal: the side every other one is set against
VM_LIKE = "vm-like"  # set against bare metal as the study's VMs were


def bare() -> str:
    """The bare-metal placement: the one that declares itself the suite's baseline (else the
    registry's baseline, else ``shared``)."""
    from scaler import placements

    declared = [p.name for p in placements.placements().values() if p.suite_side == BASELINE]
    return declared[0] if declared else placements.baseline() or "shared"


def vm_like(settings: Settings, asked: bool, skipped: dict[str, str]) -> tuple[str, ...]:
    """The placements the suite sets against bare metal, each as it declares: the VM-like
    ones, and those that join only where their timings are real when they are (or when
    ``asked``: ``--vm``); ``skipped`` gets why a VM-like one is left out. Placements that
    run on this machine only are left out of a fleet's suite. Non-virtualized first."""
    from scaler import placements

    out = []
    for p in placements.placements().values():
        side, why = p.joins_suite(settings, asked)
        if why:
            skipped[p.name] = why
        if side == VM_LIKE:
            out.append(p)
    return tuple(p.name for p in sorted(out, key=lambda p: p.virtualized))


def virtualized(name: str) -> bool:
    """Whether the placement named ``name`` runs its instances in VMs (False when this
    process does not know it)."""
    from scaler.placements import find

    known = find(name)
    return bool(known and known.virtualized)


def vm_side(points: list[dict[str, Any]], bare_name: str) -> str | None:
    """The VM-like placement measured among ``points``: a real (not emulated) VM if there is
    one, else the first non-virtualized placement other than bare metal."""
    others = [p for p in points if p["placement"] != bare_name]
    real_vm = [p for p in others if virtualized(p["placement"]) and not p.get("emulated")]
    pick = real_vm or [p for p in others if not virtualized(p["placement"])]
    return pick[0]["placement"] if pick else None


def stands_in(side: str | None) -> str:
    """Why a non-virtualized VM-like side is not the study's VMs ("" for a real VM)."""
    if side and not virtualized(side):
        return (f"{side} partitions stand in for VMs (no hardware virtualization here, or "
                "VMs not asked for): no hypervisor exits or guest scheduling to pay")
    return ""
