"""The null engine's fixed service time: what a test decides with instead of a CPU's speed."""

from __future__ import annotations

import time

import pytest

from scaler.engines import EngineSpec, load_engine
from scaler.engines.base import EngineError


@pytest.mark.parametrize("service_s", [0.0, 2e-5, 3e-3])
def test_a_query_takes_at_least_its_service_time(service_s, monkeypatch):
    monkeypatch.delenv("SCALER_NULL_SPEED", raising=False)
    engine = load_engine(EngineSpec(engine="null", service_s=service_s))
    assert engine.info["service_s"] == pytest.approx(service_s)
    x = engine.make_input()
    for _ in range(5):
        t0 = time.monotonic_ns()
        engine.infer(x)
        assert time.monotonic_ns() - t0 >= int(service_s * 1e9)


@pytest.mark.parametrize("speed, expect", [("0.2", 5e-3), ("5", 2e-4)])
def test_speed_scales_the_service_time_and_the_environment_sets_a_default(
        speed, expect, monkeypatch):
    monkeypatch.setenv("SCALER_NULL_SPEED", speed)
    assert load_engine(EngineSpec(engine="null", service_s=1e-3)).info["service_s"] == (
        pytest.approx(expect))
    monkeypatch.setenv("SCALER_NULL_SERVICE_S", "0.002")
    assert load_engine(EngineSpec(engine="null")).info["service_s"] == pytest.approx(
        0.002 / float(speed))


@pytest.mark.parametrize("env", [{"SCALER_NULL_SPEED": "0"}, {"SCALER_NULL_SPEED": "fast"},
                                 {"SCALER_NULL_SERVICE_S": "-1"}])
def test_bad_service_settings_are_engine_errors(env, monkeypatch):
    monkeypatch.delenv("SCALER_NULL_SPEED", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(EngineError):
        load_engine(EngineSpec(engine="null"))
