"""Simulated layouts carry the placement's own oversubscription verdict, so a simulated
group is flagged exactly when a measured one of the same layout would be."""

from __future__ import annotations

import pytest

from scaler import placements
from scaler.simulate.layout import plan_layout
from scaler.simulate.machine import load_machine


@pytest.mark.parametrize("placement, n", [("shared", 1), ("shared", 2), ("shared", 56),
                                          ("shared", 57), ("pinned", 56), ("pinned", 57)])
def test_oversubscribed_as_the_placement_says(placement: str, n: int) -> None:
    topo, _ = load_machine("2s28c2t", None, None, None)
    planned = placements.get(placement).plan(topo, n, smt=False)
    layout = plan_layout(topo, placement, n, oversubscribe=True)
    assert layout.oversubscribed is bool(planned.layout["oversubscribed"])
    assert layout.oversubscribed is (n > 56)  # 56 cores: instances against cores
