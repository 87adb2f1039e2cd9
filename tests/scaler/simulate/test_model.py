"""Calibration's internal laws, on runs the simulator generated for a known model and saved
as if measured: the model comes back from them, unmeasurable parameters stay assumed and say
why, given values are held fixed, and hold-out validation predicts unseen instance counts.

These prove consistency (the fit inverts the simulator), not accuracy: calibration and
validation on runs measured on real machines are in ``test_validation``."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.simulate.model import calibrate
from scaler.simulate.validate import validate
from tests.scaler.simulate.conftest import TRUE, fake_measured_run


@pytest.fixture(scope="module")
def measured(tmp_path_factory, model):
    base = tmp_path_factory.mktemp("measured")
    scaling = fake_measured_run(base / "scaling", model)
    solo = fake_measured_run(base / "solo", model, placements=("pinned",), instances=(1,),
                             cores_per_instance=1, scenario="latency")
    return scaling, solo


def test_calibration_recovers_the_model(measured):
    fitted = calibrate(list(measured))
    for name, true in TRUE.items():
        assert fitted.values[name] == pytest.approx(true, rel=0.05, abs=0.01), name
        assert fitted.sources[name] == "measured"
    assert fitted.sources["smt_gain"] == "assumed" and fitted.sources["batch_cost"] == "assumed"
    assert fitted.calibration["rms_log_error"] < 0.01
    assert fitted.shape_source.startswith("measured")


def test_unmeasurable_parameters_stay_assumed_with_the_reason(measured):
    scaling, _ = measured
    fitted = calibrate([scaling])  # no 1-core instance beside an idle core
    assert fitted.sources["memory_contention"] == "assumed"
    assert "1-core latency run" in fitted.calibration["not_measured"]["memory_contention"]
    only_pinned = calibrate([scaling], keep=lambda g: g["placement"] == "pinned")
    assert only_pinned.sources["sync_cost"] == "assumed"
    assert only_pinned.sources["slice_cost"] == "measured"


def test_batching_and_vm_costs_are_measured_when_runs_show_them(tmp_path):
    from tests.scaler.simulate.conftest import make_model

    true = make_model(batch_cost=0.6, vm_slowdown=0.1, vm_overhead_ms=5.0)
    bare = fake_measured_run(tmp_path / "bare", true, instances=(1, 2, 3), batches=(1, 8))
    vm = fake_measured_run(tmp_path / "vm", true, placements=("vm",), instances=(1, 2),
                           batches=(1, 8))
    fitted = calibrate([bare, vm])
    for name, tolerance in (("batch_cost", 0.03), ("vm_slowdown", 0.02),
                            ("vm_overhead_ms", 1.0)):  # ms: the weakest-determined
        assert fitted.sources[name] == "measured"
        assert fitted.values[name] == pytest.approx(true.values[name], abs=tolerance), name
    # batch > 1 only inside vms: the per-query overhead cannot be told from the batch cost
    only_vm = calibrate([bare, vm], keep=lambda g: g["batch"] == 1 or g["placement"] == "vm")
    assert only_vm.sources["vm_overhead_ms"] == "assumed"
    assert "batch cost" in only_vm.calibration["not_measured"]["vm_overhead_ms"]


def test_calibration_refusals(tmp_path, measured, model):
    scaling, solo = measured
    with pytest.raises(UsageError, match="thread scaling"):
        calibrate([solo])
    with pytest.raises(UsageError, match="no complete measured"):
        calibrate([scaling], keep=lambda g: False)
    other = fake_measured_run(tmp_path / "int8", model, instances=(1, 2))
    other.doc["effective"]["precision"] = "int8"
    with pytest.raises(UsageError, match="mix"):
        calibrate([scaling, other])


def test_validation_predicts_held_out_counts(measured):
    """On generated runs the held-out error is the sampling noise of the simulation alone."""
    scaling, solo = measured
    report, fitted = validate([scaling], [solo], queries=20_000)
    assert report["calibrated_on"] == [1, 2, 3] and report["held_out"] == [4, 5, 6]
    assert report["held_out_error"]["max_abs"] < 0.02
    assert {p["role"] for p in report["points"]} == {"calibration", "held out"}
    with pytest.raises(UsageError, match="choose others"):
        validate([scaling], [], calibrate_on=(1, 2, 3, 4, 5, 6))


def test_given_values_are_held_fixed_while_the_others_are_fitted(measured):
    scaling, solo = measured
    free = calibrate(list(measured))
    held = calibrate(list(measured), given={"sync_cost": 0.5, "numa_penalty": 0.3})
    assert held.values["sync_cost"] == 0.5 and held.sources["sync_cost"] == "given"
    assert held.values["numa_penalty"] == 0.3 and held.sources["numa_penalty"] == "given"
    assert held.calibration["given"] == {"sync_cost": 0.5, "numa_penalty": 0.3}
    # the others move to make up for the wrong sync cost: the fit is worse than the free one
    assert held.calibration["rms_log_error"] > 5 * free.calibration["rms_log_error"]
    with pytest.raises(UsageError, match="must lie"):
        calibrate(list(measured), given={"serial_sharing": 2.0})


def test_serial_sharing_is_a_switch_never_fitted(measured):
    fitted = calibrate(list(measured))
    assert fitted.sources["serial_sharing"] == "assumed" and fitted.values["serial_sharing"] == 1
    assert "switch" in fitted.calibration["not_measured"]["serial_sharing"]
    assert "fair scheduler" in fitted.calibration["assumed_values_from"]["serial_sharing"]
    before = calibrate(list(measured), given={"serial_sharing": 0.0, "spin": 1.0})
    assert before.sources["serial_sharing"] == before.sources["spin"] == "given"
    assert before.values["sync_cost"] != pytest.approx(fitted.values["sync_cost"], rel=0.01)


def test_spin_and_sync_growth_are_measured_from_two_thread_counts(tmp_path):
    """Shared runs at 2 and 4 threads per instance tell spinning from the sync cost and
    give its thread-count law; at one thread count both stay assumed."""
    from tests.scaler.simulate.conftest import make_model

    true = make_model(spin=0.7, sync_cost=0.05, sync_growth=1.0)
    runs = [fake_measured_run(tmp_path / machine, true, machine=machine, instances=(1, 2, 3, 4))
            for machine in ("1s2c1t", "1s4c1t")]
    solo = fake_measured_run(tmp_path / "solo", true, placements=("pinned",), instances=(1,),
                             cores_per_instance=1, scenario="latency")
    fitted = calibrate([*runs, solo])
    for name, tolerance in (("spin", 0.03), ("sync_cost", 0.01), ("sync_growth", 0.05)):
        assert fitted.sources[name] == "measured", name
        assert fitted.values[name] == pytest.approx(true.values[name], abs=tolerance), name
    one = calibrate([runs[0], solo])
    assert one.sources["spin"] == one.sources["sync_growth"] == "assumed"
    assert "thread counts" in one.calibration["not_measured"]["spin"]
