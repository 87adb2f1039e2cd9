"""The --hosts file: what it accepts and the one-line errors for what it does not."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.hosts import load_hosts
from scaler.targets.ssh import remote_command, ssh_argv


def write(tmp_path, text):
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def test_a_full_host_entry(tmp_path):
    hosts = load_hosts(write(tmp_path, '''
[[host]]
name = "node-a"
destination = "bench@10.0.0.5"
python = "/opt/scaler env/bin/python"
workdir = "/opt/scaler"
cpus = "0-3,8"
port = 2222
identity_file = "keys/id"
ssh_options = ["UserKnownHostsFile=/k/known_hosts"]

[[host]]
destination = "b.example"
'''))
    a, b = hosts
    assert a.cpus == (0, 1, 2, 3, 8) and a.port == 2222
    assert a.identity_file == str(tmp_path / "keys/id")
    assert b.name == "b.example" and b.python == "python3" and b.cpus is None


def test_ssh_gets_an_argv_and_the_remote_command_is_quoted(tmp_path):
    (host,) = load_hosts(write(tmp_path, '''
[[host]]
destination = "u@h"
python = "/p y/python"
workdir = "/w; rm -rf /"
port = 2222
'''))
    argv = ssh_argv(host, ["-m", "scaler.worker", "--model", "$(reboot)"])
    # the enforced options come first: ssh keeps the first value of an option
    assert argv[1:5] == ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert argv[argv.index("--") + 1] == "u@h"
    command = argv[-1]
    assert command == remote_command(host, ["-m", "scaler.worker", "--model", "$(reboot)"])
    assert command.startswith("cd '/w; rm -rf /' && exec env ")
    assert "'/p y/python' -m scaler.worker --model '$(reboot)'" in command


@pytest.mark.parametrize("text, fragment", [
    ("", "no [[host]] table"),
    ("[[host]]\nname = 'x'\n", "destination is required"),
    ("[[host]]\ndestination = '-oProxyCommand=x'\n", "starts with '-'"),
    ("[[host]]\ndestination = 'a'\nprot = 22\n", "unknown key(s) prot"),
    ("[[host]]\ndestination = 'a'\nport = 70000\n", "port must be"),
    ("[[host]]\ndestination = 'a'\ncpus = 'x-y'\n", "bad cpus"),
    ("[[host]]\ndestination = 'a'\nssh_options = ['StrictHostKeyChecking=no']\n",
     "set by scaler"),
    ("[[host]]\ndestination = 'a'\nssh_options = ['-F/dev/null']\n", "not Key=Value"),
    ("[[host]]\ndestination = 'a'\n[[host]]\ndestination = 'a'\n", "used twice"),
    ("[[host]\n", "not valid TOML"),
    ("hosts = 1\n", "unknown key(s) hosts"),
])
def test_bad_hosts_files_are_one_line_usage_errors(tmp_path, text, fragment):
    with pytest.raises(UsageError, match=None) as info:
        load_hosts(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_hosts_file(tmp_path):
    with pytest.raises(UsageError, match="No such file"):
        load_hosts(tmp_path / "none.toml")


def test_vm_placement_and_hosts_do_not_mix(tmp_path):
    from tests.scaler.helpers import scaler_cmd

    hosts = write(tmp_path, "[[host]]\ndestination = 'a'\n")
    r = scaler_cmd("latency", "--placement", "vm", "--engine", "null", "--hosts", str(hosts),
                   "--out", str(tmp_path / "out"), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "scaler: error: the vm placement boots VMs on this machine: it cannot be combined with "
        "--hosts (list existing VMs in the hosts file instead)"]


def test_bad_vm_memory_is_a_usage_error(tmp_path):
    from tests.scaler.helpers import scaler_cmd

    for value, fragment in (("lots", "bad --vm-memory"), ("64M", "too small")):
        r = scaler_cmd("latency", "--placement", "vm", "--engine", "null", "--vm-memory", value,
                       "--out", str(tmp_path / "out"), timeout=60)
        assert r.returncode == 2 and fragment in r.stderr, r.stderr
