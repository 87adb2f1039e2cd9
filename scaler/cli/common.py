"""Helpers shared by the command modules: output streams and the error boundary.

Kept free of heavy imports: ``scaler --help`` loads this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from affinity.errors import AffinityError
from scaler.errors import ScalerError


def err(message: str) -> None:
    """A message for the user, on stderr (stdout stays clean for ``--json``)."""
    print(message, file=sys.stderr, flush=True)


def emit_json(payload: Any) -> None:
    """The command's summary as JSON on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn library errors into a one-line message and an exit code (2 for bad input)."""
    try:
        yield
    except AffinityError as exc:
        err(f"scaler: error: {one_line(exc)}")
        raise typer.Exit(2) from None
    except ScalerError as exc:
        err(f"scaler: error: {one_line(exc)}")
        raise typer.Exit(exc.exit_code) from None
