"""The ``--hosts`` file: machines (or existing VMs) to run workers on over SSH.

A TOML file with one ``[[host]]`` table per machine::

    [[host]]
    name = "node-a"                        # label in results (default: the destination)
    destination = "bench@10.0.0.5"         # anything `ssh` accepts, a ~/.ssh/config alias too
    python = "/opt/scaler/.venv/bin/python"  # default: python3 on the remote PATH
    workdir = "/opt/scaler"                # optional: cd here before starting the worker
    cpus = "0-15"                          # optional: plan partitions on these CPUs only
    port = 22                              # optional
    identity_file = "~/.ssh/bench_ed25519" # optional (relative paths: to this file)
    ssh_options = ["UserKnownHostsFile=~/.ssh/bench_known_hosts"]  # optional, -o each

Values are checked here, once, so that a typo is a one-line usage error naming the host
rather than an SSH failure later. Nothing from this file is ever pasted into a shell string
on this machine: ssh gets an argv, and the remote command is quoted with ``shlex``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affinity.cpulist import format_cpulist, parse_cpulist
from affinity.errors import CpuListError
from scaler.errors import UsageError

KEYS = {"name", "destination", "python", "workdir", "cpus", "port", "identity_file",
        "ssh_options"}
# options the tool sets itself and that a hosts file may not weaken
ENFORCED_OPTIONS = {"batchmode", "stricthostkeychecking"}
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")


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
    hosts = [_host(t, k, file.parent) for k, t in enumerate(tables)]
    names = [h.name for h in hosts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"--hosts {path}: host name(s) used twice: {', '.join(duplicates)} "
                         "(give each a distinct name)")
    return tuple(hosts)


def _host(table: Any, k: int, base: Path) -> Host:
    where = f"host #{k + 1}"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table")
    if isinstance(table.get("name"), str):
        where = f"host {table['name']!r}"
    elif isinstance(table.get("destination"), str):
        where = f"host {table['destination']!r}"
    unknown = set(table) - KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
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
    if destination.startswith("-") or any(c.isspace() for c in destination):
        raise UsageError(f"{where}: destination {destination!r} starts with '-' or holds a "
                         "space")
    cpus = table.get("cpus")
    if cpus is not None:
        try:
            parsed = (parse_cpulist(cpus) if isinstance(cpus, str)
                      else tuple(sorted({int(c) for c in cpus})))
        except (CpuListError, TypeError, ValueError):
            raise UsageError(f"{where}: bad cpus {cpus!r}: expected e.g. \"0-7\" or "
                             "[0, 1, 2]") from None
        if not parsed or min(parsed) < 0:
            raise UsageError(f"{where}: cpus {cpus!r} is empty or negative")
        cpus = tuple(parsed)
    port = table.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError(f"{where}: port must be a number from 1 to 65535")
    identity = text("identity_file")
    if identity is not None:
        identity = str(base / os.path.expanduser(identity))
    options = table.get("ssh_options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise UsageError(f"{where}: ssh_options must be a list of \"Key=Value\" strings")
    for option in options:
        key, sep, _ = option.partition("=")
        if not sep or not key.strip() or key.startswith("-"):
            raise UsageError(f"{where}: ssh option {option!r} is not Key=Value")
        if key.strip().lower() in ENFORCED_OPTIONS:
            raise UsageError(f"{where}: ssh option {key.strip()} is set by scaler "
                             "(BatchMode=yes, StrictHostKeyChecking=yes) and cannot be changed")
    return Host(name=text("name", destination) or destination, destination=destination,
                python=text("python", "python3") or "python3", workdir=text("workdir"),
                cpus=cpus, port=port, identity_file=identity, ssh_options=tuple(options))
