"""Which instance count the scaling claim compares at (8, else the largest both sides ran)
and that the study's engine reason is given even without a sweep (hand-made runs, pure)."""

from __future__ import annotations

import pytest

from scaler import suite, suite_study
from tests.scaler.test_suite_claims import TOPO_1_NODE, claim, point, run
from tests.scaler.test_suite_study import STUDY, study_run


def test_without_8_instances_the_largest_common_count_is_compared(tmp_path):
    # pinned first in the run, each count's ratio its own: 6x at N=1, 2x at N=2, 1.1x at N=4;
    # shared alone ran N=16
    pts = [point("pinned", 1, (300.0,) * 3), point("shared", 1, (50.0,) * 3),
           point("pinned", 2, (200.0,) * 3), point("shared", 2, (100.0,) * 3),
           point("pinned", 4, (110.0,) * 3), point("shared", 4, (100.0,) * 3),
           point("shared", 16, (100.0,) * 3)]
    c = claim(suite.claims({"scaling": run(tmp_path, "s", pts)}, TOPO_1_NODE), "scaling")
    assert c["instances"] == 4
    assert c["measured"] == pytest.approx(1.10)
    assert c["compared"] == "pinned over shared at N=4"


def test_the_study_engine_s_reason_is_given_without_a_sweep(tmp_path):
    runs = {suite_study.STUDY_RUN: study_run(tmp_path)}
    c = claim(suite.claims(runs, TOPO_1_NODE, study=STUDY), "scaling")
    assert "engine onnxruntime int8: onnxruntime: binds and spins" in c["note"].split("; ")
