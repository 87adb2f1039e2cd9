"""A real one-node Slurm cluster (munged, slurmctld, slurmd) for the session's fleet tests,
in a folder of the session and on ports of its own (``tests.scaler.fleets.cluster``)."""

from __future__ import annotations

import pytest

from tests.scaler.fleets.cluster import Unavailable, start, stop


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    try:
        cluster = start(folder)
    except Unavailable as exc:
        stop(folder)
        pytest.skip(f"no Slurm test cluster: {exc}")
    try:
        yield cluster
    finally:
        stop(folder)
