"""The ``--hosts`` file: machines (or existing VMs) to run workers on over SSH.

A TOML file with one ``[[host]]`` table per machine::

    [[host]]
    name = "node-a"                        # label in results (default: the destination)
    destination = "bench@10.0.0.5"         # user@host, a host name, or a ~/.ssh/config alias
    python = "/opt/scaler/.venv/bin/python"  # default: python3 on the remote PATH
    workdir = "/opt/scaler"                # optional: cd here before starting the worker
    cpus = "0-15"                          # optional: plan partitions on these CPUs only
    port = 22                              # optional
    identity_file = "~/.ssh/bench_ed25519" # optional (relative paths: to this file)
    ssh_options = ["UserKnownHostsFile=~/.ssh/bench_known_hosts"]  # optional, -o each

Values are checked here, once, so that a typo is a one-line usage error naming the host
rather than an SSH failure later. A hosts file is data, not code: nothing from it is ever
pasted into a shell string on this machine (ssh gets an argv; the remote command is quoted
with ``shlex``), and it cannot make ssh run a local command or trust a host it does not
know:

- ``ssh_options`` is an allowlist (:data:`ALLOWED_OPTIONS`: timeouts, keep-alives,
  known-hosts and identity files, algorithms and the like), each value checked for its
  kind. ``ProxyCommand``, ``LocalCommand``, ``KnownHostsCommand``, ``Match exec``,
  ``Include``, provider libraries, forwardings, control masters and anything else are
  refused with what they would do.
- the destination is ``[user@]host`` in the characters host and user names use: ssh
  substitutes them into the user's own ``~/.ssh/config`` (``%h``, ``%r`` in a
  ``ProxyCommand`` or ``Match exec`` run by a shell), so a name holding shell syntax could
  run commands through a config file the hosts file does not control (CVE-2023-51385).
"""

from __future__ import annotations

import collections
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affinity.cpulist import format_cpulist, parse_cpulist
from affinity.errors import CpuListError
from scaler.clip import clip, quoted
from scaler.errors import UsageError

KEYS = {"name", "destination", "python", "workdir", "cpus", "port", "identity_file",
        "ssh_options"}
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")
# a user or host name as ssh takes it from the command line and hands it to %r / %h
_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"
_HOST = r"(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,252}|[0-9A-Fa-f:.]{2,45})"  # a name or an address
_DESTINATION = re.compile(rf"(?:{_USER}@)?{_HOST}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@:+-]{0,63}")
# a remote path: no quote, shell or history character, so that it means the same in any
# login shell the remote account may have (sh, bash, zsh, fish, csh)
_REMOTE_PATH = re.compile(r"[A-Za-z0-9_./~+,:@%=][A-Za-z0-9_./~+,:@%= -]*")


def _number(text: str) -> bool:
    return re.fullmatch(r"\d{1,9}", text) is not None


def _time(text: str) -> bool:  # ssh's time format: 30, 30s, 5m, 1h30m
    return re.fullmatch(r"(?:\d{1,9}[sSmMhHdDwW]?)+", text) is not None


def _yes_no(text: str) -> bool:
    return text.lower() in ("yes", "no")


def _paths(text: str) -> bool:  # one or more files (ssh's %-tokens and ~ are harmless)
    return all(re.fullmatch(r"[^\s\"'\\]+", p) for p in text.split()) and bool(text.split())


def _path(text: str) -> bool:
    return re.fullmatch(r"[^\s\"'\\]+", text) is not None


def _algorithms(text: str) -> bool:  # aes128-ctr,chacha20-poly1305@openssh.com, +ssh-rsa
    return re.fullmatch(r"[-+^]?[A-Za-z0-9@._*-]+(?:,[A-Za-z0-9@._*-]+)*", text) is not None


def _choice(*values: str) -> Callable[[str], bool]:
    return lambda text: text.lower() in values


# ssh_config keywords a hosts file may set, each with what its value must look like
ALLOWED_OPTIONS: dict[str, tuple[str, Callable[[str], bool]]] = {
    key.lower(): (key, check) for key, check in [
        ("ConnectTimeout", _time), ("ConnectionAttempts", _number),
        ("ServerAliveInterval", _time), ("ServerAliveCountMax", _number),
        ("TCPKeepAlive", _yes_no), ("Compression", _yes_no),
        ("UserKnownHostsFile", _paths), ("GlobalKnownHostsFile", _paths),
        ("CheckHostIP", _yes_no), ("HashKnownHosts", _yes_no),
        ("IdentityFile", _path), ("CertificateFile", _path), ("IdentitiesOnly", _yes_no),
        ("PubkeyAuthentication", _yes_no), ("PreferredAuthentications", _algorithms),
        ("User", lambda text: re.fullmatch(_USER, text) is not None),
        ("Ciphers", _algorithms), ("MACs", _algorithms), ("KexAlgorithms", _algorithms),
        ("HostKeyAlgorithms", _algorithms), ("PubkeyAcceptedAlgorithms", _algorithms),
        ("PubkeyAcceptedKeyTypes", _algorithms), ("CASignatureAlgorithms", _algorithms),
        ("RekeyLimit", lambda text: re.fullmatch(r"[\w ]{1,40}", text) is not None),
        ("AddressFamily", _choice("any", "inet", "inet6")),
        ("IPQoS", lambda text: re.fullmatch(r"[\w ]{1,40}", text) is not None),
        ("LogLevel", _choice("quiet", "fatal", "error", "info", "verbose", "debug",
                             "debug1", "debug2", "debug3")),
    ]
}
# why a known keyword is refused (anything else not allowed: "not an allowed option")
REFUSED_OPTIONS = {
    **dict.fromkeys(("batchmode", "stricthostkeychecking"),
                    "is set by scaler (BatchMode=yes, StrictHostKeyChecking=yes) and cannot "
                    "be changed"),
    **dict.fromkeys(("proxycommand", "localcommand", "permitlocalcommand",
                     "knownhostscommand", "match", "proxyjump", "proxyusefdpass"),
                    "runs a local command"),
    **dict.fromkeys(("pkcs11provider", "securitykeyprovider", "include", "host"),
                    "loads code or configuration from elsewhere"),
    **dict.fromkeys(("verifyhostkeydns", "updatehostkeys", "hostkeyalias",
                     "nohostauthenticationforlocalhost"),
                    "weakens or redirects host-key checking"),
    **dict.fromkeys(("controlmaster", "controlpath", "controlpersist",
                     "forkafterauthentication", "sessiontype", "stdinnull", "remotecommand",
                     "requesttty", "escapechar"),
                    "changes how the session runs (background masters, a command or a "
                    "terminal of its own)"),
    **dict.fromkeys(("localforward", "remoteforward", "dynamicforward", "forwardagent",
                     "forwardx11", "forwardx11trusted", "tunnel", "tunneldevice", "sendenv",
                     "setenv", "gatewayports", "streamlocalbindunlink"),
                    "forwards something between the machines"),
    "port": "is given as `port = N` in the host table",
    "hostname": "would send the connection elsewhere than `destination`",
}


@dataclass(frozen=True)
class Host:
    name: str
    destination: str
    python: str = "python3"
    workdir: str | None = None
    cpus: tuple[int, ...] | None = None
    port: int | None = None
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "destination": self.destination, "python": self.python,
                "workdir": self.workdir,
                "cpus": None if self.cpus is None else format_cpulist(self.cpus),
                "port": self.port}


def load_hosts(path: str | os.PathLike[str]) -> tuple[Host, ...]:
    """Read and check a hosts file; UsageError (one line, naming the host) when it is wrong."""
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text())
    except OSError as exc:
        raise UsageError(f"--hosts {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--hosts {path}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"host"}
    if unknown:
        raise UsageError(f"--hosts {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                         "expected [[host]] tables")
    tables = doc.get("host")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"--hosts {path}: no [[host]] table")
    hosts = [_host(t, k, file.parent) for k, t in enumerate(tables)]  # values quoted cut
    counts = collections.Counter(h.name for h in hosts)  # linear: 300,000 hosts are fine
    duplicates = sorted(n for n, c in counts.items() if c > 1)
    if duplicates:
        raise UsageError(f"--hosts {path}: host name(s) used twice: "
                         f"{clip(', '.join(duplicates))} (give each a distinct name)")
    return tuple(hosts)


def check_ssh_option(option: Any) -> str:
    """``option`` as ``Key=Value`` with the keyword's canonical spelling; UsageError saying
    why when it is not an allowed option with a value of the right kind."""
    if not isinstance(option, str) or not _PRINTABLE.fullmatch(option):
        raise UsageError(f"ssh option {quoted(option)} is not a Key=Value string")
    key, sep, value = option.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key) or not value:
        raise UsageError(f"ssh option {quoted(option)} is not Key=Value")
    reason = REFUSED_OPTIONS.get(key.lower())
    if reason is not None:
        raise UsageError(f"ssh option {clip(key, 60)} {reason}: refused in a hosts file")
    if key.lower() not in ALLOWED_OPTIONS:
        raise UsageError(f"ssh option {clip(key, 60)} is not allowed in a hosts file (allowed: "
                         f"{', '.join(name for name, _ in ALLOWED_OPTIONS.values())}; set "
                         "anything else in ~/.ssh/config)")
    name, check = ALLOWED_OPTIONS[key.lower()]
    if not check(value):
        raise UsageError(f"ssh option {name}: bad value {quoted(value)}")
    return f"{name}={value}"


def _host(table: Any, k: int, base: Path) -> Host:
    where = f"host #{k + 1}"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table")
    if isinstance(table.get("name"), str) and _PRINTABLE.fullmatch(table["name"]):
        where = f"host {quoted(table['name'])}"
    elif isinstance(table.get("destination"), str) and _PRINTABLE.fullmatch(
            table["destination"]):
        where = f"host {quoted(table['destination'])}"
    unknown = set(table) - KEYS
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise UsageError(f"{where}: unknown key(s) {clip(names, 120)} "
                         f"(known: {', '.join(sorted(KEYS))})")

    def text(key: str, default: str | None = None) -> str | None:
        value = table.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not _PRINTABLE.fullmatch(value):
            raise UsageError(f"{where}: {key} must be a non-empty string without control "
                             "characters")
        return value

    destination = text("destination")
    if destination is None:
        raise UsageError(f"{where}: destination is required (e.g. user@host)")
    if not _DESTINATION.fullmatch(destination):
        raise UsageError(f"{where}: destination {quoted(destination)} is not [user@]host (letters, "
                         "digits, '.', '_', '-', or an IP address); it cannot "
                         "start with '-' or hold a space or shell character")
    name = text("name", destination) or destination
    if not _NAME.fullmatch(name):
        raise UsageError(f"{where}: name {quoted(name)} may hold letters, digits and . _ @ : + - "
                         "(up to 64)")
    python = text("python", "python3") or "python3"
    workdir = text("workdir")
    for key, value in (("python", python), ("workdir", workdir)):
        if value is not None and not _REMOTE_PATH.fullmatch(value):
            raise UsageError(f"{where}: {key} {quoted(value)} may hold letters, digits, spaces and "
                             "/ . _ ~ + , : @ % = - (no quote or shell character, no leading "
                             "'-' or space)")
    cpus = table.get("cpus")
    if cpus is not None:
        try:
            parsed = (parse_cpulist(cpus) if isinstance(cpus, str)
                      else tuple(sorted({_cpu(c) for c in cpus})))
        except (CpuListError, TypeError, ValueError):
            raise UsageError(f"{where}: bad cpus {quoted(cpus)}: expected e.g. \"0-7\" or "
                             "[0, 1, 2]") from None
        if not parsed or min(parsed) < 0:
            raise UsageError(f"{where}: cpus {quoted(cpus)} is empty or negative")
        cpus = tuple(parsed)
    port = table.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):
        raise UsageError(f"{where}: port must be a number from 1 to 65535")
    identity = text("identity_file")
    if identity is not None:
        if not _path(identity):
            raise UsageError(f"{where}: identity_file {quoted(identity)} holds a space, a quote "
                             "or a backslash")
        identity = str(base / os.path.expanduser(identity))
    options = table.get("ssh_options", [])
    if not isinstance(options, list):
        raise UsageError(f"{where}: ssh_options must be a list of \"Key=Value\" strings")
    try:
        checked = tuple(check_ssh_option(option) for option in options)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return Host(name=name, destination=destination, python=python, workdir=workdir,
                cpus=cpus, port=port, identity_file=identity, ssh_options=checked)


def _cpu(value: Any) -> int:
    """One CPU number of a ``cpus = [...]`` list: an integer, not a float or a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or value > 1 << 20:
        raise ValueError(value)
    return value
