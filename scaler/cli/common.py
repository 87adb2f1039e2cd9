"""Helpers shared by the command modules: output streams and the error boundary.

Kept free of heavy imports: ``scaler --help`` loads this module.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from affinity.errors import AffinityError
from scaler.errors import ScalerError, UsageError

# what reading a run.json of unexpected shape raises in the code that interprets it
READ_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
               ZeroDivisionError)
DEBUG_ENV = "SCALER_DEBUG"  # set: let such errors through with their traceback
# --threading of the scenario commands (scaler.threadstyles)
ThreadingOpt = Annotated[str, typer.Option(
    "--threading", help="how each instance's runtime threads wait and bind: tuned (passive "
    "waits, no self-pinning), defaults (each runtime out of the box), model-zoo (the study's "
    "launcher: thread k on the k-th allowed core, blocktime 1 ms); comma-separated to sweep "
    "them side by side like placements")]

# --isa of the scenario commands (scaler.engines.isa_caps)
IsaOpt = Annotated[str, typer.Option(
    "--isa", help="cap the kernels' instruction set: native (default), oneDNN's names "
    "(avx2, avx512_core, avx512_core_vnni, avx512_core_bf16, avx512_core_amx, ...) or a "
    "generation (skylake, cascadelake, cooperlake, sapphirerapids); comma-separated to sweep "
    "them side by side (engines on oneDNN only: openvino, tf)")]


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


@contextmanager
def reading_runs(given: Sequence[str]) -> Iterator[None]:
    """Around a command that interprets run files: a value of a type the readers do not
    expect, or a key they need missing (a run.json edited by hand, cut and patched, written
    by another program) is bad input, reported in one line naming the runs and where the
    reading stopped (exit 2); ``SCALER_DEBUG=1`` shows the traceback instead."""
    try:
        yield
    except READ_ERRORS as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f"{os.sep}scaler{os.sep}" in f.filename]
        where = f" in {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames \
            else ""
        runs = ", ".join(given) or "the runs"
        raise UsageError(f"{runs}: a run.json holds a value this scaler cannot read "
                         f"({type(exc).__name__}: {exc}{where}); was it edited, cut short or "
                         f"written by another program? ({DEBUG_ENV}=1 shows the traceback)"
                         ) from None
