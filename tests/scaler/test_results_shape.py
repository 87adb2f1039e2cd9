"""What a run file of the wrong shape is told, word for word, and where a run's target
record is read from (new and old layouts): hand-made documents, pure."""

from __future__ import annotations

import json

import pytest

from scaler.errors import ResultsError
from scaler.results import SCHEMA_VERSION, load_run, target_record


def write_run(tmp_path, **top):
    doc = {"schema_version": SCHEMA_VERSION, "scenario": "offline", **top}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.mark.parametrize(("key", "value", "said"), [
    ("status", 5, "status should be a string, not int"),
    ("requested", [], "requested should be a object, not list"),
    ("groups", {}, "groups should be a list, not dict"),
    ("emulated", "yes", "emulated should be a true or false, not str"),
    ("command", "scaler run", "command should be a list, not str"),
])
def test_a_top_level_key_of_the_wrong_type_is_named_with_both_types(tmp_path, key, value, said):
    with pytest.raises(ResultsError) as caught:
        load_run(write_run(tmp_path, **{key: value}))
    assert str(caught.value) == (f"{tmp_path / 'run.json'}: {said} "
                                 "(not a run this scaler wrote?)")


def test_kind_names_of_several_types_are_joined_by_or():
    from scaler.results import _kind_name

    assert _kind_name((dict, list)) == "object or list"
    assert _kind_name((str, bool)) == "string or true or false"
    assert _kind_name(int) == "int"
    assert _kind_name((float, int)) == "float or int"


def test_the_target_record_is_read_under_targets():
    doc = {"targets": {"vm": {"accel": "kvm"}, "stride": {"via": "loopback"}}}
    assert target_record(doc, "vm") == {"accel": "kvm"}
    assert target_record(doc, "stride") == {"via": "loopback"}
    assert target_record(doc, "pinned") is None


def test_the_new_layout_wins_over_an_old_top_level_record():
    doc = {"targets": {"vm": {"accel": "kvm"}}, "vm": {"accel": "tcg"}}
    assert target_record(doc, "vm") == {"accel": "kvm"}


def test_old_runs_keep_the_record_at_the_top_level_under_the_placement():
    assert target_record({"vm": {"accel": "tcg"}}, "vm") == {"accel": "tcg"}
    assert target_record({"targets": None, "vm": {"accel": "tcg"}}, "vm") == {"accel": "tcg"}
    assert target_record({"targets": {}, "vm": {"accel": "tcg"}}, "vm") == {"accel": "tcg"}
    assert target_record({"targets": {"other": {}}, "vm": {"a": 1}}, "vm") == {"a": 1}


def test_an_old_top_level_value_that_is_not_a_record_is_no_record():
    assert target_record({"vm": "tcg"}, "vm") is None
    assert target_record({"vm": ["tcg"]}, "vm") is None
    assert target_record({}, "vm") is None


@pytest.mark.parametrize("key", ["lock", "host", "summary", "hosts", "requested", "effective"])
def test_the_run_s_own_keys_are_never_a_target_s_record(key):
    assert target_record({key: {"a": 1}}, key) is None
    # under targets, a placement of that name is read
    assert target_record({"targets": {key: {"a": 1}}}, key) == {"a": 1}


def refused(tmp_path, doc) -> str:
    (tmp_path / "run.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ResultsError) as caught:
        load_run(tmp_path)
    return str(caught.value).replace(str(tmp_path / "run.json"), "FILE")


def test_a_group_of_an_old_run_that_is_not_an_object_is_named_before_the_upgrade(tmp_path):
    doc = {"schema_version": 1, "scenario": "offline", "groups": [{}, [1]]}
    assert refused(tmp_path, doc) == ("FILE: groups[1] should be an object, not list (not a "
                                      "run this scaler wrote?)")


def test_a_group_of_a_current_run_is_checked_by_the_schema_naming_the_file(tmp_path):
    doc = {"schema_version": SCHEMA_VERSION, "scenario": "offline", "groups": [5]}
    assert refused(tmp_path, doc) == "FILE: groups[0] should be an object, not 5"


@pytest.mark.parametrize("version", [1, SCHEMA_VERSION])
def test_a_host_topology_that_is_not_an_object_is_named(tmp_path, version):
    doc = {"schema_version": version, "scenario": "offline", "host": {"topology": [1]}}
    assert refused(tmp_path, doc) == "FILE: host.topology should be an object, not list"


def test_a_corrupt_run_file_quotes_the_decoder(tmp_path):
    assert refused(tmp_path, "{") == ("FILE: corrupt run file (Expecting property name "
                                      "enclosed in double quotes: line 1 column 2 (char 1))")


def test_a_run_s_samples_are_checked_against_its_groups_records(tmp_path):
    import numpy as np

    from scaler.results import SAMPLES_DIR, Run

    group = {"id": 1, "per_instance": [{"index": 0, "queries": 3}]}
    run = Run(tmp_path, {"scenario": "offline", "groups": [group]})
    with pytest.raises(ResultsError) as caught:  # no samples at all
        run.samples()
    assert str(caught.value) == (f"{tmp_path / SAMPLES_DIR / 'g1.npz'}: missing (group 1 "
                                 "recorded 3 queries of instance 0)")
    (tmp_path / SAMPLES_DIR).mkdir()
    np.savez(tmp_path / SAMPLES_DIR / "g1.npz", g1_i0_start_ns=np.arange(3),
             g1_i0_end_ns=np.arange(3) + 10)
    got = run.samples()
    assert sorted(got) == ["g1_i0_end_ns", "g1_i0_start_ns"]
    assert got["g1_i0_end_ns"].tolist() == [10, 11, 12]
    short = Run(tmp_path, {"scenario": "offline", "groups": [
        {"id": 1, "per_instance": [{"index": 0, "queries": 4}]}]})
    with pytest.raises(ResultsError, match="g1_i0_start_ns holds 3 samples, the run recorded 4"):
        short.samples()


def test_the_record_of_a_loaded_run_is_the_run_a_reader_sees(tmp_path):
    import platform

    from scaler.hostfacts import boot_id

    (tmp_path / "a").mkdir()
    run = load_run(write_run(tmp_path / "a", status="complete"))
    assert run.record.scenario == "offline" and run.record.status == "complete"
    # saved "running" by a process of this machine and boot that cannot exist (Linux pids
    # stop at 2**22): a reader sees it partial, its record too
    (tmp_path / "b").mkdir()
    writer = {"pid": 2**22 + 12345, "hostname": platform.node(), "boot_id": boot_id()}
    run = load_run(write_run(tmp_path / "b", status="running", writer=writer))
    assert run.doc["status"] == "partial"
    assert run.record.status == "partial"


def test_a_bad_field_of_an_old_run_met_by_its_upgrade_names_the_file_and_field(tmp_path):
    doc = {"schema_version": 1, "scenario": "offline", "groups": [{"instances": "x"}]}
    assert refused(tmp_path, doc) == ("FILE: groups[0].instances should be a whole number "
                                      ">= 1, not 'x'")


def test_a_first_save_that_fails_leaves_no_half_built_folder(tmp_path):
    from scaler.results import save_run

    with pytest.raises(ValueError):  # samples numpy cannot store: ragged
        save_run(tmp_path / "run", {"scenario": "offline"}, {"g1_a": [[1], [1, 2]]})
    assert list(tmp_path.iterdir()) == []
