"""Every refusal the hosts file promises, word for word, with a hostile value for each key.

The hosts file is a security boundary (module doc of ``scaler.hosts``): each refusal gets a
test here that checks the whole one-line message a user reads, which host it names, and that
the nearest harmless value still passes.
"""

from __future__ import annotations

import os

import pytest

from scaler.errors import UsageError
from scaler.hosts import check_ssh_option, load_hosts

KNOWN = "cpus, destination, identity_file, name, port, python, ssh_options, workdir"
STRING = "must be a non-empty string without control characters"
REMOTE = ("may hold letters, digits, spaces and / . _ ~ + , : @ % = - (no quote or shell "
          "character, no leading '-' or space)")


def hosts(tmp_path, text):
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


def refusal(tmp_path, text) -> str:
    with pytest.raises(UsageError) as info:
        load_hosts(hosts(tmp_path, text))
    return str(info.value)


def host_with(tmp_path, key, value, named=True):
    head = "[[host]]\n" + ("name = 'n1'\n" if named and key != "name" else "")
    dest = "" if key == "destination" else "destination = 'u@h'\n"
    return refusal(tmp_path, f"{head}{dest}{key} = {value}\n")


@pytest.mark.parametrize("key, value, message", [
    # name
    ("name", "'a;b'", "host 'a;b': name 'a;b' may hold letters, digits and . _ @ : + - (up to 64)"),
    ("name", "'-a'", "host '-a': name '-a' may hold letters, digits and . _ @ : + - (up to 64)"),
    # a value over 60 characters is shown cut, with the count of what was cut (issue 30)
    ("name", "'" + "n" * 65 + "'",
     f"host '{'n' * 60}'... (5 more characters cut): name '{'n' * 60}'... (5 more characters "
     "cut) may hold letters, digits and . _ @ : + - (up to 64)"),
    ("name", "''", f"host 'u@h': name {STRING}"),
    ("name", "5", f"host 'u@h': name {STRING}"),
    ("name", '"a\\u0007b"', f"host 'u@h': name {STRING}"),
    # destination
    ("destination", "'u@h;id'",
     "host 'n1': destination 'u@h;id' is not [user@]host (letters, digits, '.', '_', '-', or an "
     "IP address); it cannot start with '-' or hold a space or shell character"),
    ("destination", "['u@h']", f"host 'n1': destination {STRING}"),
    ("destination", '"u@h\\n"', f"host 'n1': destination {STRING}"),
    # python and workdir: remote paths
    ("python", "'python3; id'", f"host 'n1': python 'python3; id' {REMOTE}"),
    ("python", "''", f"host 'n1': python {STRING}"),
    ("python", "3", f"host 'n1': python {STRING}"),
    ("workdir", "' /w'", f"host 'n1': workdir ' /w' {REMOTE}"),
    ("workdir", "'/w\"x'", f"host 'n1': workdir '/w\"x' {REMOTE}"),
    ("workdir", '"/w\\tx"', f"host 'n1': workdir {STRING}"),
    # cpus
    ("cpus", "[]", "host 'n1': cpus [] is empty or negative"),
    ("cpus", "[-1]", "host 'n1': cpus [-1] is empty or negative"),
    ("cpus", "[0, 1048577]",
     "host 'n1': bad cpus [0, 1048577]: expected e.g. \"0-7\" or [0, 1, 2]"),
    ("cpus", "[1.0]", "host 'n1': bad cpus [1.0]: expected e.g. \"0-7\" or [0, 1, 2]"),
    ("cpus", "['0']", "host 'n1': bad cpus ['0']: expected e.g. \"0-7\" or [0, 1, 2]"),
    ("cpus", "'0-3;id'", "host 'n1': bad cpus '0-3;id': expected e.g. \"0-7\" or [0, 1, 2]"),
    ("cpus", "7", "host 'n1': bad cpus 7: expected e.g. \"0-7\" or [0, 1, 2]"),
    # port
    ("port", "0", "host 'n1': port must be a number from 1 to 65535"),
    ("port", "65536", "host 'n1': port must be a number from 1 to 65535"),
    ("port", "-22", "host 'n1': port must be a number from 1 to 65535"),
    ("port", "'22'", "host 'n1': port must be a number from 1 to 65535"),
    ("port", "22.0", "host 'n1': port must be a number from 1 to 65535"),
    ("port", "true", "host 'n1': port must be a number from 1 to 65535"),
    # identity_file
    ("identity_file", "'/k/a b'",
     "host 'n1': identity_file '/k/a b' holds a space, a quote or a backslash"),
    ("identity_file", "'/k/a\\b'",
     "host 'n1': identity_file '/k/a\\\\b' holds a space, a quote or a backslash"),
    ("identity_file", "''", f"host 'n1': identity_file {STRING}"),
    # ssh_options
    ("ssh_options", "'ConnectTimeout=5'",
     "host 'n1': ssh_options must be a list of \"Key=Value\" strings"),
    ("ssh_options", "[5]", "host 'n1': ssh option 5 is not a Key=Value string"),
    ("ssh_options", "['ProxyCommand=nc %h %p']",
     "host 'n1': ssh option ProxyCommand runs a local command: refused in a hosts file"),
    ("ssh_options", "['AddressFamily=ipx']",
     "host 'n1': ssh option AddressFamily: bad value 'ipx'"),
])
def test_each_key_refuses_a_hostile_value_in_one_exact_line(tmp_path, key, value, message):
    assert host_with(tmp_path, key, value) == message


def test_the_refusal_names_the_host_by_name_destination_or_position(tmp_path):
    two = "[[host]]\ndestination = 'a'\n[[host]]\n"
    assert refusal(tmp_path, two + "destination = 5\n") == f"host #2: destination {STRING}"
    assert refusal(tmp_path, two + "destination = 'b'\nport = 0\n") == (
        "host 'b': port must be a number from 1 to 65535")
    assert refusal(tmp_path, two + "name = 7\ndestination = 'b'\n") == f"host 'b': name {STRING}"
    assert refusal(tmp_path, two + 'name = "x\\u0001"\ndestination = "b\\u0001"\n') == (
        f"host #2: destination {STRING}")  # checked before the name
    assert refusal(tmp_path, "[[host]]\nname = 'n'\n") == (
        "host 'n': destination is required (e.g. user@host)")
    assert refusal(tmp_path, "host = [1]\n") == "host #1: expected a table"
    assert refusal(tmp_path, "host = []\n").endswith(": no [[host]] table")
    assert refusal(tmp_path, "[host]\ndestination = 'a'\n").endswith(": no [[host]] table")
    assert refusal(tmp_path, "[[host]]\ndestination = 'a'\nuser = 'x'\nkey = 1\n") == (
        f"host 'a': unknown key(s) key, user (known: {KNOWN})")


def test_file_level_refusals_name_the_file(tmp_path):
    path = tmp_path / "hosts.toml"
    assert refusal(tmp_path, "a = 1\nb = 2\n") == (
        f"--hosts {path}: unknown key(s) a, b; expected [[host]] tables")
    assert refusal(tmp_path, "[[host]]\ndestination = 'a'\n[[host]]\nname = 'a'\n"
                   "destination = 'b'\n[[host]]\ndestination = 'c'\nname = 'c'\n"
                   "[[host]]\ndestination = 'c'\n") == (
        f"--hosts {path}: host name(s) used twice: a, c (give each a distinct name)")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_hosts(path)
    with pytest.raises(UsageError) as info:
        load_hosts(tmp_path)  # a folder
    assert str(info.value) == f"--hosts {tmp_path}: Is a directory"


def test_the_nearest_harmless_values_pass(tmp_path):
    (host,) = load_hosts(hosts(tmp_path, "\n".join([
        "[[host]]", "destination = 'u_1@node-a.example'", "name = '" + "n" * 64 + "'",
        "python = '/opt/a b/python3'", "workdir = '~/w,1:2@3%4=5+6'", "cpus = [3, 1, 1048576, 3]",
        "port = 65535", "identity_file = 'keys/id_bench'",
        "ssh_options = ['AddressFamily=INET6', 'LogLevel=Debug3', 'ServerAliveInterval=1H30m',"
        " 'ConnectTimeout=5W', 'MACs=UMAC-64@openssh.com', 'TCPKeepAlive=YES']"]) + "\n"))
    assert host.name == "n" * 64 and host.destination == "u_1@node-a.example"
    assert host.python == "/opt/a b/python3" and host.workdir == "~/w,1:2@3%4=5+6"
    assert host.cpus == (1, 3, 1048576) and host.port == 65535
    assert host.identity_file == str(tmp_path / "keys" / "id_bench")
    assert host.ssh_options == ("AddressFamily=INET6", "LogLevel=Debug3",
                                "ServerAliveInterval=1H30m", "ConnectTimeout=5W",
                                "MACs=UMAC-64@openssh.com", "TCPKeepAlive=YES")
    assert host.to_dict() == {"name": "n" * 64, "destination": "u_1@node-a.example",
                              "python": "/opt/a b/python3", "workdir": "~/w,1:2@3%4=5+6",
                              "cpus": "1,3,1048576", "port": 65535}
    (low,) = load_hosts(hosts(tmp_path, "[[host]]\ndestination = 'h'\nport = 1\n"
                              "cpus = '0-2,5'\nidentity_file = '~/.ssh/k'\n"))
    assert low.port == 1 and low.cpus == (0, 1, 2, 5) and low.name == "h"
    assert low.identity_file == os.path.expanduser("~/.ssh/k")
    (bare,) = load_hosts(hosts(tmp_path, "[[host]]\ndestination = 'h'\n"))
    assert bare == type(bare)(name="h", destination="h")
    assert bare.python == "python3" and bare.workdir is None and bare.cpus is None
    assert bare.to_dict()["cpus"] is None and bare.ssh_options == ()


@pytest.mark.parametrize("option, message", [
    ("BatchMode=no", "ssh option BatchMode is set by scaler (BatchMode=yes, "
     "StrictHostKeyChecking=yes) and cannot be changed: refused in a hosts file"),
    ("Include=/etc/x", "ssh option Include loads code or configuration from elsewhere: refused "
     "in a hosts file"),
    ("UpdateHostKeys=yes", "ssh option UpdateHostKeys weakens or redirects host-key checking: "
     "refused in a hosts file"),
    ("ControlPath=/tmp/c", "ssh option ControlPath changes how the session runs (background "
     "masters, a command or a terminal of its own): refused in a hosts file"),
    ("SendEnv=X", "ssh option SendEnv forwards something between the machines: refused in a "
     "hosts file"),
    ("Port=1", "ssh option Port is given as `port = N` in the host table: refused in a hosts "
     "file"),
    ("HostName=x", "ssh option HostName would send the connection elsewhere than `destination`: "
     "refused in a hosts file"),
    ("ConnectTimeout=", "ssh option 'ConnectTimeout=' is not Key=Value"),
    ("=5", "ssh option '=5' is not Key=Value"),
    ("1Key=5", "ssh option '1Key=5' is not Key=Value"),
    ("ConnectTimeout=5\n", "ssh option 'ConnectTimeout=5\\n' is not a Key=Value string"),
    ("", "ssh option '' is not a Key=Value string"),
    ("ConnectionAttempts=1234567890", "ssh option ConnectionAttempts: bad value '1234567890'"),
    ("ConnectTimeout=5x", "ssh option ConnectTimeout: bad value '5x'"),
    ("TCPKeepAlive=maybe", "ssh option TCPKeepAlive: bad value 'maybe'"),
    ("User=a;b", "ssh option User: bad value 'a;b'"),
    ("User=-oProxyCommand", "ssh option User: bad value '-oProxyCommand'"),
    ("IdentityFile=/a b", "ssh option IdentityFile: bad value '/a b'"),
    ("UserKnownHostsFile=/a \"b\"", "ssh option UserKnownHostsFile: bad value '/a \"b\"'"),
    ("Ciphers=,aes", "ssh option Ciphers: bad value ',aes'"),
    ("RekeyLimit=1G;id", "ssh option RekeyLimit: bad value '1G;id'"),
    ("IPQoS=" + "a" * 41, f"ssh option IPQoS: bad value '{'a' * 41}'"),
    ("LogLevel=loud", "ssh option LogLevel: bad value 'loud'"),
])
def test_ssh_option_refusals_word_for_word(option, message):
    with pytest.raises(UsageError) as info:
        check_ssh_option(option)
    assert str(info.value) == message


def test_every_allowed_option_names_the_others_when_refusing_an_unknown_one():
    with pytest.raises(UsageError) as info:
        check_ssh_option("Frobnicate=1")
    message = str(info.value)
    assert message.startswith("ssh option Frobnicate is not allowed in a hosts file (allowed: "
                              "ConnectTimeout, ConnectionAttempts, ServerAliveInterval, ")
    assert message.endswith(", IPQoS, LogLevel; set anything else in ~/.ssh/config)")
    assert check_ssh_option(" user = bench_1 ") == "User=bench_1"
    assert check_ssh_option("Compression=No") == "Compression=No"
    assert check_ssh_option("rekeylimit=1G 1h") == "RekeyLimit=1G 1h"
    assert check_ssh_option("GlobalKnownHostsFile=/a /b") == "GlobalKnownHostsFile=/a /b"
