"""Which of the runs a glob caught belong together.

``results/scaling-*`` catches whatever is there: runs of different engines, models and
precisions, and null-engine runs (no inference, a million images/s). Commands that draw or
model runs ask this module which ones they can use together, and say what they left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scaler.errors import UsageError


def kind(run: Any) -> tuple[str, str, str]:
    """(engine, precision, model) of a run."""
    eff = run.doc.get("effective", {})
    return (str(eff.get("engine")), str(eff.get("precision")), str(eff.get("model")))


def infers(engine: str) -> bool:
    """Whether the engine runs a model (the null engine measures the harness only); an
    engine no longer registered counts as one that did."""
    from scaler.engines.registry import engines

    known = engines().get(engine)
    return known is None or known.infers


def kind_name(k: tuple[str, str, str]) -> str:
    engine, precision, model = k
    return (f"{engine} engine (no inference)" if not infers(engine)
            else f"{engine} {precision} {model}")


def without_null(runs: list[Any], command: str,
                 note: Callable[[str], None]) -> list[Any]:
    """Leave runs of engines that infer nothing (``null``) out when runs of real engines
    are among them (their figures are a thousand times larger and say nothing about
    inference), noting which."""
    null = [r for r in runs if not infers(kind(r)[0])]
    if not null or len(null) == len(runs):
        return runs
    names = sorted({kind(r)[0] for r in null})
    note(f"scaler: note: {command}: left out {_folders(null)}: {', '.join(names)} engine "
         "(no inference) beside runs of real engines; give them alone to see them")
    return [r for r in runs if infers(kind(r)[0])]


def one_kind(runs: list[Any], command: str, note: Callable[[str], None]) -> list[Any]:
    """The runs of a single (engine, precision, model), after leaving null-engine runs out
    beside real ones; a UsageError naming the folders of each kind when several remain."""
    runs = without_null(runs, command, note)
    kinds: dict[tuple[str, str, str], list[Any]] = {}
    for run in runs:
        kinds.setdefault(kind(run), []).append(run)
    if len(kinds) > 1:
        parts = [f"{kind_name(k)} ({_folders(rs)})" for k, rs in sorted(kinds.items())]
        raise UsageError(f"{command}: the runs mix engines, precisions or models: "
                         + "; ".join(parts) + ": give the runs of one")
    return runs


def _folders(runs: list[Any]) -> str:
    return ", ".join(str(r.path) for r in runs)
