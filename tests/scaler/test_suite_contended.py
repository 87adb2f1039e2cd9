"""A claim that rests on a window the speed probe found contended says so, whichever side
it is on, and the claims table shows it (hand-made runs, pure; see test_suite_claims.py)."""

from __future__ import annotations

import pytest

from scaler import suite
from tests.scaler.test_suite_claims import TOPO_1_NODE, claim, point, run

SIDES = [(False, False, False), (True, False, True), (False, True, True), (True, True, True)]


@pytest.mark.parametrize("base, mine, said", SIDES)
def test_a_latency_claim_is_contended_when_either_side_is(tmp_path, base, mine, said):
    pts = [point("shared", latency=(10.0, 10.0), contended=base),
           point("pinned", latency=(10.5, 10.5), contended=mine)]
    c = claim(suite.claims({"latency": run(tmp_path, "l", pts)}, TOPO_1_NODE), "latency")
    assert c["contended"] is said
    assert c["noisy"] is False  # contended is not noisy


@pytest.mark.parametrize("base, mine, said", SIDES)
def test_a_scaling_claim_is_contended_when_either_side_is(tmp_path, base, mine, said):
    pts = [point("shared", 8, (100.0,) * 3, contended=base),
           point("pinned", 8, (110.0,) * 3, contended=mine)]
    c = claim(suite.claims({"scaling": run(tmp_path, "s", pts)}, TOPO_1_NODE), "scaling")
    assert c["contended"] is said
    assert c["noisy"] is False


def test_a_latency_claim_noisy_on_the_base_side_alone_is_noisy(tmp_path):
    pts = [point("shared", latency=(10.0, 10.0), noisy=True),
           point("pinned", latency=(10.5, 10.5))]
    c = claim(suite.claims({"latency": run(tmp_path, "l", pts)}, TOPO_1_NODE), "latency")
    assert c["noisy"] is True and c["contended"] is False


def test_the_table_says_a_claim_rests_on_a_contended_window(tmp_path):
    pts = [point("shared", 8, (100.0,) * 3), point("pinned", 8, (110.0,) * 3, contended=True)]
    lines = suite.claim_lines(suite.claims({"scaling": run(tmp_path, "s", pts)}, TOPO_1_NODE))
    assert (f"  {'scaling':<12} study {'2.04x':<7} here {'1.10x [1.10, 1.10]':<26} "
            "differs from the study  (rests on a contended window)") in lines
    quiet = [point("shared", 8, (100.0,) * 3), point("pinned", 8, (110.0,) * 3)]
    lines = suite.claim_lines(suite.claims({"scaling": run(tmp_path, "q", quiet)}, TOPO_1_NODE))
    assert (f"  {'scaling':<12} study {'2.04x':<7} here {'1.10x [1.10, 1.10]':<26} "
            "differs from the study") in lines
