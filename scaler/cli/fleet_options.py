"""Options of the ``--hosts`` fleet shared by the scenario commands (kept apart from
``scaler.cli.run``, which is long enough)."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_SSH_PARALLEL = 32
MAX_SSH_PARALLEL = 1024

SshParallel = Annotated[int, typer.Option(
    "--ssh-parallel", help="with --hosts: at most this many ssh processes connecting at once "
    "(topology reads, worker starts until their ready report)")]


def check_ssh_parallel(value: int) -> int:
    from scaler.settings import check_positive

    check_positive("--ssh-parallel", value, at_most=MAX_SSH_PARALLEL)
    return value
