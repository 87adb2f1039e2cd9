"""Hostile values, one per kind of field, read from hand-made documents: each is refused with
the message written here by hand (the field's path, what it should be, what it is), and the
load names the file; records written without a field their writers always record fail where
they are written."""

from __future__ import annotations

import json
import math

import pytest

from scaler import results, schema
from scaler.errors import ResultsError
from scaler.schema import FieldError


def instance(**extra):
    return {"index": 0, "status": "complete", "queries": 10, "throughput_ips": 5.0, **extra}


def group(**extra):
    return {"id": 0, "placement": "pinned", "instances": 1, "batch": 1, "engine": "null",
            "precision": "fp32", "model": "tiny", "target": "local", "status": "complete",
            "errors": [], "cores": 1, "cpus": 1, "oversubscribed": False,
            "throughput_ips": 5.0, "latency_ms": {"p50": 1.0, "samples": 10},
            "per_instance": [instance()], "warnings": [], **extra}


def point(**extra):
    return {"placement": "pinned", "instances": 1, "batch": 1, "engine": "null",
            "precision": "fp32", "groups": [0], "repeats": 1, "complete": 1,
            "throughput_ips": 5.0, "ci95_ips": None, "repeats_ips": [5.0],
            "latency_repeats": [{"mean": 1.0, "p50": 1.0, "p99": None}], "warnings": [],
            **extra}


def doc(groups=None, points=None, **extra):
    return {"schema_version": 2, "scenario": "scaling", "status": "complete",
            "requested": {"repeat": 1}, "effective": {"engine": "null", "precision": "fp32",
                                                      "model": "tiny"},
            "groups": [group()] if groups is None else groups,
            "points": [point()] if points is None else points, **extra}


def refused(d) -> str:
    with pytest.raises(FieldError) as info:
        schema.Run.from_dict(d)
    return str(info.value)


def test_a_good_document_reads_typed_and_gives_back_its_json():
    d = doc(future_key={"kept": [1, 2]})
    run = schema.Run.from_dict(d)
    g = run.groups[0]
    assert (g.id, g.placement, g.instances, g.throughput_ips) == (0, "pinned", 1, 5.0)
    assert g.per_instance[0].samples == 10 and g.plan.cores == 1 and g.complete
    assert run.points[0].repeats_ips == [5.0] and run.effective.model == "tiny"
    assert run.extra == {"future_key": {"kept": [1, 2]}} and run.group(0) is g
    assert json.dumps(run.to_dict()) == json.dumps(d)


@pytest.mark.parametrize("change, message", [
    # a figure: finite and >= 0
    (lambda d: d["points"][0].update(throughput_ips=math.inf),
     "points[0].throughput_ips should be a finite number >= 0, not Infinity"),
    (lambda d: d["groups"][0].update(throughput_ips=-3.0),
     "groups[0].throughput_ips should be a finite number >= 0, not -3.0"),
    (lambda d: d["groups"][0].update(throughput_ips="fast"),
     "groups[0].throughput_ips should be a finite number >= 0, not 'fast'"),
    # a count, a positive whole number (true is not a number)
    (lambda d: d["groups"][0]["per_instance"][0].update(queries=-1),
     "groups[0].per_instance[0].queries should be a whole number >= 0, not -1"),
    (lambda d: d["groups"][0].update(instances=True),
     "groups[0].instances should be a whole number >= 1, not True"),
    (lambda d: d["groups"][0].update(batch=1.5),
     "groups[0].batch should be a whole number >= 1, not 1.5"),
    (lambda d: d["requested"].update(repeat=0),
     "requested.repeat should be a whole number >= 1, not 0"),
    # a flag, a string, one of a few
    (lambda d: d["groups"][0].update(noisy="yes"), "groups[0].noisy should be true or false, "
                                                   "not 'yes'"),
    (lambda d: d["effective"].update(engine=5), "effective.engine should be a string, not 5"),
    (lambda d: d.update(status="done"),
     "status should be one of running, complete, partial, not 'done'"),
    # objects and lists
    (lambda d: d["groups"][0].update(latency_ms=[]),
     "groups[0].latency_ms should be an object, not a list"),
    (lambda d: d["groups"][0].update(per_instance={}),
     "groups[0].per_instance should be a list, not an object"),
    (lambda d: d["groups"].__setitem__(0, 3), "groups[0] should be an object, not 3"),
    (lambda d: d["groups"][0]["per_instance"].__setitem__(0, "x"),
     "groups[0].per_instance[0] should be an object, not 'x'"),
    (lambda d: d.update(effective=[]), "effective should be an object, not a list"),
    (lambda d: d["points"][0].update(ci95_ips=[1.0]),
     "points[0].ci95_ips should be a list of 2 values, not a list"),
    (lambda d: d["points"][0].update(repeats_ips=[5.0, None]),
     "points[0].repeats_ips should be a list of a finite number >= 0, not a list"),
    (lambda d: d["groups"][0].update(warnings=["ok", 3]),
     "groups[0].warnings should be a list of a string, not a list"),
    (lambda d: d["points"][0].update(latency_repeats=[{"p50": 1.0}]),
     "points[0].latency_repeats should be a list of objects of mean, p50, p99 (finite "
     "numbers or null), not a list"),
    # latency summaries, deep
    (lambda d: d["groups"][0]["latency_ms"].update(p99=math.nan),
     "groups[0].latency_ms.p99 should be a finite number, not NaN"),
    (lambda d: d["groups"][0]["latency_ms"].update(samples=None),
     "groups[0].latency_ms.samples should be a whole number >= 0, not null"),
    (lambda d: d["groups"][0]["per_instance"][0].update(latency_ms={"early_stopping": 3}),
     "groups[0].per_instance[0].latency_ms.early_stopping should be an object, not 3"),
    (lambda d: d["groups"][0].update(latency_ms={"early_stopping": {"p99": -math.inf}}),
     "groups[0].latency_ms.early_stopping.p99 should be a finite number, not -Infinity"),
    # required, or never null where present
    (lambda d: d["groups"][0].pop("id"), "groups[0].id should be a whole number >= 0, "
                                         "missing"),
    (lambda d: d["points"][0].pop("repeats_ips"),
     "points[0].repeats_ips should be a list, missing"),
    (lambda d: d["groups"][0].update(per_instance=None),
     "groups[0].per_instance should be a list, not null"),
    (lambda d: d.update(requested=None), "requested should be an object, not null"),
    (lambda d: d["points"][0].pop("throughput_ips"),
     "points[0].throughput_ips should be a finite number >= 0 (the point has 1 complete "
     "repeats), missing"),
    # the layout keys of a group's plan
    (lambda d: d["groups"][0].update(cores_per_instance=0),
     "groups[0].cores_per_instance should be a whole number >= 1, not 0"),
    (lambda d: d["groups"][0].update(plan_warnings="one"),
     "groups[0].plan_warnings should be a list, not 'one'"),
    (lambda d: d["groups"][0].update(series=math.inf),
     "groups[0].series should be a string, not Infinity"),
])
def test_each_kind_of_field_refuses_a_hostile_value_naming_it(change, message):
    d = doc()
    change(d)
    assert refused(d) == message


def test_a_long_value_is_shown_cut_short():
    d = doc()
    d["groups"][0]["placement"] = 10 ** 80
    text = refused(d)
    assert text.startswith("groups[0].placement should be a string, not 1000") and \
        text.endswith("... (24 more characters)")


def test_scenarios_decided_on_a_bound_need_it():
    d = doc(scenario="multistream", requested={"latency_bound_ms": 50.0})
    assert refused(d) == "requested.stat should be a string, missing"
    d["requested"]["stat"] = "p99"
    assert schema.Run.from_dict(d).requested.stat == "p99"
    assert refused(doc(scenario="server", requested={"stat": "p99"})) == (
        "requested.latency_bound_ms should be a finite number > 0, missing")


def test_load_names_the_file_and_the_field(tmp_path):
    d = doc()
    d["points"][0]["throughput_ips"] = math.inf
    (tmp_path / "run.json").write_text(json.dumps(d))
    with pytest.raises(ResultsError) as info:
        results.load_run(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'run.json'}: points[0].throughput_ips should be "
                               "a finite number >= 0, not Infinity")


def test_a_schema_1_group_the_upgrade_reads_is_named_too(tmp_path):
    d = {"schema_version": 1, "scenario": "scaling",
         "groups": [group(), group(id=1, throughput_ips="x")]}
    (tmp_path / "run.json").write_text(json.dumps(d))
    with pytest.raises(ResultsError) as info:
        results.load_run(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'run.json'}: groups[1].throughput_ips should be "
                               "a finite number >= 0, not 'x'")


def test_a_record_without_a_field_its_writers_record_fails_where_it_is_written():
    g = group()
    assert schema.Group.written(g, "group 0") == g
    del g["target"]
    with pytest.raises(FieldError, match=r"^group 0\.target should be a string, missing$"):
        schema.Group.written(g, "group 0")
    with pytest.raises(FieldError, match=r"^instance 0\.status should be a string, missing$"):
        schema.Instance.written({"index": 0}, "instance 0")
    # what a reader reads may hold less: a group of an old run without its target
    assert schema.Group.from_dict(g, "groups[0]").target is None


def test_absent_stays_absent_and_null_stays_null():
    g = schema.Group.from_dict({"id": 1, "placement": "p", "instances": 2, "noisy": None,
                                "x": None}, "g")
    assert g.to_dict() == {"id": 1, "placement": "p", "instances": 2, "noisy": None,
                           "x": None}
    assert g.get("noisy", "absent") is None and g.get("wall_s", "absent") == "absent"
    assert g.get("x", "absent") is None and g.plan.to_dict() == {}


def test_every_typed_key_is_an_attribute_of_its_part():
    from dataclasses import fields

    for part in (schema.Run, schema.Group, schema.Instance, schema.Layout, schema.Point,
                 schema.Effective, schema.Requested):
        names = {f.name for f in fields(part)}
        assert set(part.FIELDS) | set(part.PARTS) | set(part.LISTS) | set(part.FLAT) <= names
        assert not set(part.FIELDS) & {k for p in part.FLAT.values() for k in p.FIELDS}


def test_a_run_built_by_hand_reads_its_record_when_asked(tmp_path):
    good = results.Run(tmp_path, doc())
    assert good.record.groups[0].placement == "pinned" and good.record is good.record
    bad = doc()
    bad["groups"][0]["noisy"] = 1
    with pytest.raises(ResultsError, match=r"run\.json: groups\[0\]\.noisy should be true or "
                                           r"false, not 1$"):
        results.Run(tmp_path, bad).record  # noqa: B018 - the property reads and checks
