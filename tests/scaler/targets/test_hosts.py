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
workdir = "/w dir"
port = 2222
'''))
    argv = ssh_argv(host, ["-m", "scaler.worker", "--model", "$(reboot)"])
    # the enforced options come first: ssh keeps the first value of an option
    assert argv[1:5] == ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert argv[argv.index("--") + 1] == "u@h"
    command = argv[-1]
    assert command == remote_command(host, ["-m", "scaler.worker", "--model", "$(reboot)"])
    assert command.startswith("cd '/w dir' && exec env ")
    assert "'/p y/python' -m scaler.worker --model '$(reboot)'" in command


@pytest.mark.parametrize("text, fragment", [
    ("", "no [[host]] table"),
    ("[[host]]\nname = 'x'\n", "destination is required"),
    ("[[host]]\ndestination = '-oProxyCommand=x'\n", "cannot start with '-'"),
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


# -- hostile hosts files: nothing in them runs a local command or trusts an unknown host ----

def one_host(tmp_path, **values):
    lines = ["[[host]]", "destination = 'u@h'"]
    for key, value in values.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, list)
                     else f"{key} = [{', '.join(repr(v) for v in value)}]")
    return write(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize("option, why", [
    ("ProxyCommand=sh -c 'touch /tmp/x'", "runs a local command"),
    ("proxycommand=nc %h %p", "runs a local command"),
    ("LocalCommand=touch /tmp/x", "runs a local command"),
    ("PermitLocalCommand=yes", "runs a local command"),
    ("KnownHostsCommand=/bin/echo %H", "runs a local command"),
    ("Match=exec \"touch /tmp/x\"", "runs a local command"),
    ("ProxyJump=evil@jump", "runs a local command"),
    ("PKCS11Provider=/tmp/evil.so", "loads code"),
    ("SecurityKeyProvider=/tmp/evil.so", "loads code"),
    ("Include=/tmp/evil_config", "loads code"),
    ("StrictHostKeyChecking=accept-new", "set by scaler"),
    ("BatchMode=no", "set by scaler"),
    ("VerifyHostKeyDNS=yes", "host-key checking"),
    ("UpdateHostKeys=yes", "host-key checking"),
    ("HostKeyAlias=trusted.example", "host-key checking"),
    ("NoHostAuthenticationForLocalhost=yes", "host-key checking"),
    ("ControlMaster=auto", "how the session runs"),
    ("ControlPersist=yes", "how the session runs"),
    ("ForkAfterAuthentication=yes", "how the session runs"),
    ("RemoteCommand=rm -rf ~", "how the session runs"),
    ("RequestTTY=force", "how the session runs"),
    ("ForwardAgent=yes", "forwards something"),
    ("LocalForward=8080 localhost:80", "forwards something"),
    ("SetEnv=LD_PRELOAD=/tmp/x.so", "forwards something"),
    ("Hostname=elsewhere.example", "elsewhere"),
    ("Port=2222", "port = N"),
    ("FooBar=1", "not allowed in a hosts file"),
    ("ConnectTimeout=10; touch /tmp/x", "bad value"),
    ("UserKnownHostsFile=\"/tmp/a b\"", "bad value"),
    ("Ciphers=aes128-ctr $(reboot)", "bad value"),
    ("ServerAliveInterval=", "not Key=Value"),
    ("ProxyCommand touch /tmp/x", "not Key=Value"),
    ("Proxy Command=x", "not Key=Value"),
])
def test_ssh_options_outside_the_allowlist_are_refused(tmp_path, option, why):
    """Today's check only refuses BatchMode and StrictHostKeyChecking: a ProxyCommand in a
    hosts file runs a local command as soon as scaler probes the host."""
    with pytest.raises(UsageError) as info:
        load_hosts(one_host(tmp_path, ssh_options=[option]))
    message = str(info.value)
    assert why in message and "\n" not in message, message
    assert message.startswith("host 'u@h': ssh option")


def test_harmless_ssh_options_pass_with_their_canonical_names(tmp_path):
    (host,) = load_hosts(one_host(tmp_path, ssh_options=[
        "connecttimeout=30", "ServerAliveInterval=5", "ServerAliveCountMax=3",
        "UserKnownHostsFile=~/.ssh/bench_known_hosts /etc/ssh/other_hosts",
        "GlobalKnownHostsFile=/dev/null", "IdentityFile=%d/.ssh/id_bench",
        "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
        "HostKeyAlgorithms=+ssh-rsa", "Compression=yes", "LogLevel=ERROR",
        "AddressFamily=inet"]))
    assert host.ssh_options[0] == "ConnectTimeout=30"
    assert "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com" in host.ssh_options


@pytest.mark.parametrize("destination", [
    "u@h;touch /tmp/x", "$(touch /tmp/x)", "`id`@h", "h|x", "u@h&", "u@h'x", "h\\x", "a b",
    "-oProxyCommand=x", "u@-h", "@h", "u@", "ssh://u@h:22/x", "u@h%x", "[::1]",
])
def test_destinations_that_could_reach_a_shell_through_ssh_config_are_refused(tmp_path,
                                                                               destination):
    """ssh substitutes the host and user names into %h / %r of the user's own ~/.ssh/config
    (a ProxyCommand or Match exec runs them through a shell): only name characters pass."""
    with pytest.raises(UsageError, match="is not \\[user@\\]host"):
        load_hosts(write(tmp_path, f"[[host]]\ndestination = {destination!r}\n"))


@pytest.mark.parametrize("destination", ["bench@10.0.0.5", "node-a", "u_1@node.example.com",
                                         "fe80::1", "u@2001:db8::7", "alias_from_config"])
def test_ordinary_destinations_pass(tmp_path, destination):
    (host,) = load_hosts(write(tmp_path, f"[[host]]\ndestination = {destination!r}\n"))
    assert host.destination == destination


@pytest.mark.parametrize("key, value", [
    ("python", "python3; touch /tmp/x"), ("python", "-c"), ("python", "/x/`id`/python"),
    ("python", "/opt/it's/python"), ("workdir", "/w && touch /tmp/x"), ("workdir", "-P"),
    ("workdir", "/w/$(id)"), ("workdir", "/w/!!"), ("name", "a;b"), ("name", "a b"),
    ("identity_file", "/k/a b"), ("cpus", [0.5]), ("cpus", [True]), ("port", True),
    ("cpus", "0-99999999999"),
])
def test_other_values_that_a_shell_could_misread_are_refused(tmp_path, key, value):
    with pytest.raises(UsageError) as info:
        load_hosts(one_host(tmp_path, **{key: value}))
    assert "\n" not in str(info.value)


def test_host_timeouts_win_over_the_defaults_and_the_enforced_options_over_everything(
        tmp_path):
    """What ssh itself makes of the argv (``ssh -G`` prints the effective configuration
    without connecting): ssh keeps the first value of an option."""
    import shutil
    import subprocess

    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    (host,) = load_hosts(one_host(tmp_path, port=2222, ssh_options=[
        "ConnectTimeout=42", "ServerAliveInterval=7", "UserKnownHostsFile=/k/known"]))
    argv = ssh_argv(host, ["-m", "scaler", "topology"])
    argv = [argv[0], "-G", *argv[1:argv.index("--")], "--", host.destination]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    config = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert config["connecttimeout"] == "42" and config["serveraliveinterval"] == "7"
    assert config["serveralivecountmax"] == "4"  # the default where the host says nothing
    assert config["batchmode"] == "yes" and config["stricthostkeychecking"] == "true"
    assert config["userknownhostsfile"] == "/k/known" and config["port"] == "2222"
    assert "proxycommand" not in config and "localcommand" not in config
