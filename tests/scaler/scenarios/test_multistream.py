"""The multistream search: doubling, ``--max-batch`` itself, bisection; and a real search
with the null engine that answers a --max-batch that is not a power of two."""

from __future__ import annotations

import json

import pytest

from scaler.scenarios.multistream import batches_to_probe
from tests.scaler.helpers import scaler_cmd

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)


def search(cap: int, largest_passing: int) -> list[int]:
    probed, good, bad = [], 0, None
    while (batch := batches_to_probe(good, bad, cap)) is not None:
        probed.append(batch)
        if batch <= largest_passing:
            good = batch
        else:
            bad = batch
    assert good == min(largest_passing, cap)
    return probed


def test_the_search_reaches_max_batch_and_bisects():
    assert search(300, 1000) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert search(300, 280) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 278, 289, 283, 280,
                                281]
    assert search(256, 1000) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert search(100, 0) == [1]
    assert search(10, 5) == [1, 2, 4, 8, 6, 5]


def test_multistream_with_max_batch_300_can_answer_300(tmp_path):
    """Ten probes, each a fresh worker: no minimum duration and no warm-up, so that each
    window is the 662 queries p99 needs (0.2 s windows ran 150,000 to 250,000 null queries,
    0.5 s of each probe's time in reading their samples)."""
    r = scaler_cmd("multistream", "--engine", "null", "--latency-bound-ms", "5",
                   "--instances", "1", "--max-batch", "300", "--min-duration", "0",
                   "--warmup", "0", "--out", str(tmp_path), "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)["results"]
    assert result["meets_bound"] is True and result["batch"] == 300
    probes = [p["batch"] for p in result["probes"]]
    assert probes == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    # each probe ran for the queries LoadGen's early stopping needs for p99
    assert all(p["samples"] >= 662 for p in result["probes"])
    assert result["latency_ms"] is not None and result["latency_ms"] <= 5
