"""``--fleet ssh:FILE``, the long form of ``--hosts FILE``, through a real sshd: a scaling run
and ``topology --fleet`` read the host over SSH exactly as ``--hosts`` does."""

from __future__ import annotations

import json
from pathlib import Path

from affinity import read_topology
from tests.scaler.helpers import scaler_cmd

SHORT = ["--min-duration", "0.3", "--min-queries", "10", "--warmup", "0"]


def test_fleet_ssh_is_hosts(tmp_path, sshd):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(sshd.hosts_toml("box"))
    r = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--placement", "pinned",
                   *SHORT, "--fleet", f"ssh:{hosts}", "--out", str(tmp_path), "--json",
                   timeout=240)
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    assert doc["requested"]["hosts_file"] == str(hosts) and doc["requested"]["fleet"] is None
    assert doc["hosts"]["box"]["topology"]["usable_cpus"]
    assert doc["groups"][0]["target"] == "ssh"
    t = scaler_cmd("topology", "--json", "--fleet", f"ssh:{hosts}", timeout=120)
    assert t.returncode == 0, t.stderr
    machines = json.loads(t.stdout)["machines"]
    assert list(machines) == ["box"]
    assert machines["box"]["usable_cpus"] == list(read_topology().usable_cpus)
