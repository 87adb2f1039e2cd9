"""Plug-ins: modules that register engines or placements without editing scaler.

A plug-in is a module that calls ``scaler.engines.registry.register(...)``,
``scaler.placements.register(...)`` (a placement, with its own options), ``scaler.fleets.register``
(a fleet provider for ``--fleet NAME``) and/or ``scaler.targets.register`` (a target type whose
stale-state sweep runs before each run) when imported. It is named either in the environment
variable ``SCALER_PLUGINS`` (comma-separated module names, importable from ``PYTHONPATH``),
or by an installed package's entry point in the group ``scaler.plugins``. The environment
variable reaches every process scaler starts on this machine (workers inherit it), so a
plug-in engine loads in its workers too. Loaded once per process, on the first look at a
registry.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from scaler.errors import UsageError

ENV = "SCALER_PLUGINS"
ENTRY_POINT_GROUP = "scaler.plugins"

_loaded = False
_failure: str | None = None


def load() -> None:
    """Import every plug-in once. A failure is kept, not raised: the CLI's help is built at
    import time, so the failure is reported by ``check`` inside the CLI's error boundary."""
    global _loaded, _failure
    if _loaded:
        return
    _loaded = True
    for name in [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any failure of a foreign module
            _failure = f"{ENV}: cannot import plug-in {name!r}: {type(exc).__name__}: {exc}"
            return
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:
            _failure = (f"plug-in {point.name!r} ({point.value}): cannot load: "
                        f"{type(exc).__name__}: {exc}")
            return


def refuse(message: str) -> None:
    """Keep a plug-in's fault found after it loaded (an option that clashes with a command's):
    ``check`` reports the first one."""
    global _failure
    if _failure is None:
        _failure = message


def check() -> None:
    """UsageError (one line, exit 2) when a plug-in failed to load."""
    load()
    if _failure is not None:
        raise UsageError(_failure)


def in_order(registry: dict[str, Any], builtin: tuple[str, ...]) -> dict[str, Any]:
    """A registry's entries: built-in ones in their fixed order, then plug-ins as registered."""
    rank = {name: k for k, name in enumerate(builtin)}
    return dict(sorted(registry.items(), key=lambda item: rank.get(item[0], len(rank))))
