"""Extension points from test code alone (issue 24): a placement with an option of its own, a
fleet provider and a target that describes itself (``tests/scaler/plugin_extend.py``), run
through the CLI in a child process with the null engine; ``scaler plan`` asking the
placement for its own plan; the suite asking each placement how it joins.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from affinity import read_topology
from scaler import placements, suite_sides
from scaler.placements import Placement
from scaler.placements.options import option
from scaler.placements.vm import VmOptions
from scaler.results import load_run, target_record
from scaler.settings import Settings
from tests.scaler.helpers import ROOT, scaler_cmd

PATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
EXTEND = {"SCALER_PLUGINS": "tests.scaler.plugin_extend", "PYTHONPATH": PATH}
EXAMPLE = {"SCALER_PLUGINS": "tests.scaler.plugin_example", "PYTHONPATH": PATH}


def test_the_plugin_placements_option_is_a_flag_of_the_scenario_commands_and_suite():
    for command in ("scaling", "latency", "suite"):
        r = scaler_cmd(command, "--help", env=EXTEND, timeout=60)
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.replace("│", " ").split())  # rich's table, unwrapped
        assert "--stride-first" in text and "(stride placement)" in text, command
        assert "--vm-memory" in text and "--accel" in text  # the built-in ones stay


@pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)
def test_a_scaling_sweep_through_a_plugin_placement_option_fleet_and_target(tmp_path):
    r = scaler_cmd("scaling", "--engine", "null", "--model", "tiny", "--placement", "stride",
                   "--stride-first", "1", "--fleet", "loopback", "--instances", "1-2",
                   "--min-duration", "0.3", "--min-queries", "20", "--warmup", "0.1",
                   "--remeasure", "0", "--out", str(tmp_path), "--json", env=EXTEND,
                   timeout=120)
    assert r.returncode == 0, r.stderr
    doc = load_run(json.loads(r.stdout)["run"]).doc
    # the placement's option in the run's requested settings, beside the VM's as before
    assert doc["requested"]["stride_first"] == 1
    assert doc["requested"]["vm_accel"] == "auto" and doc["requested"]["vm_memory_mb"] is None
    usable = read_topology().usable_cpus
    groups = {g["instances"]: g for g in doc["groups"]}
    assert set(groups) == {1, 2}
    for n, g in groups.items():
        assert len(g["per_instance"]) == n
        assert g["status"] == "complete" and g["stride_first"] == 1
        for k, inst in enumerate(g["per_instance"]):
            cpu = usable[(1 + k) % len(usable)]  # planned with the run's --stride-first
            assert inst["partition"]["cpus"] == [cpu] and inst["binding"]["cpus"] == [cpu]
    # the fleet's record under its provider's key, the target's under targets.<placement>
    assert doc["loopback"]["cpus"] == list(usable)
    started = sum(not i["reused"] for g in doc["groups"] for i in g["per_instance"])
    assert target_record(doc, "stride") == {"via": "loopback", "started": started}
    assert doc["targets"]["stride"]["started"] >= 2


def test_a_bad_plugin_option_is_the_placements_one_line_refusal():
    r = scaler_cmd("scaling", "--engine", "null", "--placement", "stride", "--stride-first",
                   "-1", env=EXTEND, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "scaler: error: --stride-first must be at least 0, not -1"
    r = scaler_cmd("latency", "--engine", "null", "--accel", "xen", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "scaler: error: unknown --accel 'xen': choose from auto, kvm, tcg"


def test_plan_shows_the_placements_own_plan():
    r = scaler_cmd("plan", "--placement", "firstcpu", "-n", "2", "--json", env=EXAMPLE,
                   timeout=60)
    assert r.returncode == 0, r.stderr
    first = read_topology().usable_cpus[0]
    assert [p["cpus"] for p in json.loads(r.stdout)["partitions"]] == [[first], [first]]
    r = scaler_cmd("plan", "--placement", "firstcpu", "-n", "2", env=EXAMPLE, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[3] for row in rows[-2:]] == [str(first), str(first)]
    r = scaler_cmd("plan", "--placement", "stride", "--stride-first", "1", "-n", "1",
                   "--json", env=EXTEND, timeout=60)  # with the placement's own option
    usable = read_topology().usable_cpus
    assert json.loads(r.stdout)["partitions"][0]["cpus"] == [usable[1 % len(usable)]]


class _Declared(Placement):
    name = "declared"
    summary = "joins the suite as it declares (test)"
    suite_side = "vm-like"


class _Silent(Placement):
    name = "silent"
    summary = "declares no side: stays out of the suite (test)"


def test_the_suite_asks_each_placement_how_it_joins(monkeypatch):
    known = placements.placements()
    monkeypatch.setattr("scaler.placements.base._PLACEMENTS",
                        {**known, "declared": _Declared(), "silent": _Silent()})
    skipped: dict[str, str] = {}
    tcg = Settings(placement_options={"vm": VmOptions(accel="tcg")})
    sides = suite_sides.vm_like(tcg, False, skipped)
    assert sides == ("pinned", "declared")  # vm: emulated here, left out saying why
    assert "emulated" in skipped["vm"] and "--vm" in skipped["vm"] and "silent" not in skipped
    assert suite_sides.vm_like(tcg, True, {}) == ("pinned", "declared", "vm")  # --vm
    assert suite_sides.bare() == "shared"
    # a placement's notes are not how it joins: a note on a placement that declares no
    # "only when real" changes nothing
    monkeypatch.setattr(_Declared, "notes", lambda self, s: ["a note"], raising=False)
    monkeypatch.setattr(_Declared, "virtualized", True)
    assert "declared" in suite_sides.vm_like(tcg, False, {})


def test_an_option_whose_flag_or_key_is_taken_is_refused_at_registration():
    @dataclasses.dataclass(frozen=True)
    class TakesAccel:
        accel: str = option("x", flag="--accel", help="clashes with the vm placement's")

    @dataclasses.dataclass(frozen=True)
    class TakesBatch:
        size: int = option(1, help="clashes with a setting", record_key="batch")

    class Clash(Placement):
        name = "clash"
        summary = "test"

    for options, what in ((TakesAccel, "--accel"), (TakesBatch, "'batch'")):
        clash = type("Clash", (Clash,), {"options": options})()
        with pytest.raises(ValueError, match=what):
            placements.register(clash)
        assert "clash" not in placements.placements()


def test_target_records_of_old_runs_still_read():
    old = {"scenario": "scaling", "vm": {"accel": "tcg"}, "lock": {"cpus": "0"}}
    assert target_record(old, "vm") == {"accel": "tcg"}
    assert target_record(old, "lock") is None  # the run's own key, never a target's
    new = {"targets": {"vm": {"accel": "kvm"}}, "vm": "not this"}
    assert target_record(new, "vm") == {"accel": "kvm"}
    assert target_record(new, "pinned") is None


def test_a_plugin_option_that_clashes_with_a_commands_own_is_a_one_line_error(tmp_path):
    (tmp_path / "clashing_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "from scaler.placements import Placement, register\n"
        "from scaler.placements.options import option\n"
        "@dataclass(frozen=True)\n"
        "class Opts:\n"
        "    size: int = option(1, flag='--batch', help='clashes', record_key='clash_size')\n"
        "class Clash(Placement):\n"
        "    name = 'clash'\n"
        "    summary = 'test'\n"
        "    options = Opts\n"
        "register(Clash())\n")
    env = {"SCALER_PLUGINS": "clashing_plugin", "PYTHONPATH": f"{tmp_path}{os.pathsep}{PATH}"}
    r = scaler_cmd("scaling", "--help", env=env, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--batch clashes with an option of `scaler" in lines[0], r.stderr
