"""SSH targets against a real OpenSSH server on 127.0.0.1 (see conftest.sshd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scaler.helpers import scaler_cmd
from tests.scaler.targets.conftest import descendants, keygen, wait_gone

pytestmark = pytest.mark.serial  # measures: one such test at a time (tests/conftest.py)

SHORT = ["--engine", "null", "--min-duration", "0.3", "--min-queries", "10", "--warmup", "0.2",
         "--ready-timeout", "120"]


def hosts_file(tmp_path: Path, *tables: str) -> str:
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(tables))
    return str(path)


def no_workers_left(sshd) -> None:
    left = wait_gone(descendants(sshd.proc.pid), 10.0)
    assert not left, f"processes left under sshd: {sorted(left)}"


def test_two_pinned_instances_on_one_host(tmp_path, sshd):
    hosts = hosts_file(tmp_path, sshd.hosts_toml("box"))
    r = scaler_cmd("scaling", "--instances", "2", "--placement", "pinned", *SHORT,
                   "--hosts", hosts, "--out", str(tmp_path), "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    assert doc["status"] == "complete"
    assert doc["hosts"]["box"]["topology"]["usable_cpus"]  # the host's own topology
    (group,) = doc["groups"]
    assert group["target"] == "ssh" and group["emulated"] is False
    insts = group["per_instance"]
    assert [i["host"]["name"] for i in insts] == ["box", "box"]
    # pinned on the remote host: each worker reports its own single CPU, distinct
    assert sorted(c for i in insts for c in i["binding"]["cpus"]) == [0, 1]
    assert all(i["binding"]["cpus"] == i["partition"]["cpus"] for i in insts)
    assert group["per_host"]["box"]["instances"] == 2
    assert group["throughput_ips"] == pytest.approx(group["per_host"]["box"]["throughput_ips"])
    # one machine, one boot: the host's rate is taken over the common window
    assert group["per_host"]["box"]["throughput"]["method"] == "common_window"
    no_workers_left(sshd)


def test_instances_are_dealt_to_hosts_and_summed(tmp_path, sshd):
    hosts = hosts_file(tmp_path, sshd.hosts_toml("a"), sshd.hosts_toml("b", cpus="1"))
    r = scaler_cmd("scaling", "--instances", "1-2", "--placement", "pinned", *SHORT,
                   "--hosts", hosts, "--out", str(tmp_path), "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    one, two = doc["groups"]
    assert set(one["per_host"]) == {"a"}
    assert set(two["per_host"]) == {"a", "b"}
    assert two["throughput"]["method"] == "sum_over_hosts"
    assert two["throughput_ips"] == pytest.approx(
        sum(h["throughput_ips"] for h in two["per_host"].values()))
    (series,) = json.loads(r.stdout)["series"]
    assert set(series["points"][1]["per_host_ips"]) == {"a", "b"}
    b = [i for i in two["per_instance"] if i["host"]["name"] == "b"][0]
    assert b["binding"]["cpus"] == [1]  # planned on host b's own CPU list
    no_workers_left(sshd)


def bad_key(sshd) -> dict:
    key = sshd.folder / "stranger_key"
    if not key.exists():
        keygen(key)
    return {"identity_file": str(key)}


@pytest.mark.parametrize("case, overrides, fragment", [
    ("unreachable", lambda s: {"port": 1}, "Connection refused"),
    ("refused key", bad_key, "Permission denied"),
    ("unknown host key", lambda s: {"ssh_options": ["UserKnownHostsFile=/dev/null",
                                                    "GlobalKnownHostsFile=/dev/null"]},
     "Host key verification failed"),
    ("no scaler", lambda s: {"python": "/usr/bin/python3", "workdir": "/"},
     "scaler is not installed"),
])
def test_a_broken_host_is_a_one_line_error_naming_it(tmp_path, sshd, case, overrides, fragment):
    hosts = hosts_file(tmp_path, sshd.hosts_toml("good"),
                       sshd.hosts_toml("broken", **overrides(sshd)))
    r = scaler_cmd("scaling", "--instances", "2", "--placement", "pinned", *SHORT,
                   "--hosts", hosts, "--out", str(tmp_path / "out"), timeout=120)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("scaler: error: host broken (") and fragment in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    no_workers_left(sshd)


@pytest.mark.parametrize("overrides", [
    {"ssh_options": ["ProxyCommand=sh -c 'touch MARKER; exec nc %h %p'"]},
    {"ssh_options": ["LocalCommand=touch MARKER", "PermitLocalCommand=yes"]},
    {"ssh_options": ["KnownHostsCommand=/bin/sh -c 'touch MARKER'"]},
    {"destination": "root@127.0.0.1;touch${IFS}MARKER"},
])
def test_a_hostile_hosts_file_runs_nothing_here(tmp_path, sshd, overrides):
    """A real sshd is up and the key works: on today's code ssh would run the command. The
    hosts file is refused (exit 2, one line) before ssh starts, and nothing was run."""
    marker = tmp_path / "ran"
    values = {k: ([o.replace("MARKER", str(marker)) for o in v] if isinstance(v, list)
                  else v.replace("MARKER", str(marker))) for k, v in overrides.items()}
    hosts = hosts_file(tmp_path, sshd.hosts_toml("evil", **values))
    r = scaler_cmd("latency", "--placement", "pinned", *SHORT, "--hosts", hosts,
                   "--out", str(tmp_path / "out"), timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scaler: error: host 'evil'"), r.stderr
    assert not marker.exists()
    no_workers_left(sshd)


def test_serving_over_ssh_on_this_machine_times_completions_on_the_workers_clock(tmp_path,
                                                                                   sshd):
    """The binary frames cross an SSH channel; the host is this machine (same boot), so
    the worker's own end-of-inference times are the completion times."""
    hosts = hosts_file(tmp_path, sshd.hosts_toml("box"))
    # 1,000 requests/s: the harness's own probe at the target rate takes 1,000 requests
    r = scaler_cmd("server", "--placement", "pinned", "--engine", "null", "--target-qps",
                   "1000", "--latency-bound-ms", "5000", "--min-duration", "1",
                   "--min-queries", "100", "--warmup", "0.2", "--ready-timeout", "120",
                   "--hosts", hosts, "--out", str(tmp_path), "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    doc = json.loads((Path(json.loads(r.stdout)["run"]) / "run.json").read_text())
    (group,) = doc["groups"]
    assert group["target"] == "ssh" and group["status"] == "complete"
    assert group["requests"]["completed"] == group["requests"]["scheduled"] >= 200
    assert group["generator"]["completion_clock"] == ["worker"]
    no_workers_left(sshd)
