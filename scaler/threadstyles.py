"""``--threading``: how each instance's runtime threads wait and bind, as one run sweeps them.

The styles are ``scaler.engines.base.THREADING_STYLES``: ``tuned`` (scaler's default: passive
waits, no self-pinning of unpinned instances), ``defaults`` (each runtime out of the box) and
``model-zoo`` (Intel Model Zoo's launcher: intra-op threads = physical cores, inter-op =
sockets, thread k bound to the k-th allowed core, blocktime 1 ms). Each engine declares the
styles it can express (``EngineType.threading``, checked by ``scaler.engines.check_spec``);
this module parses the option and names the series a style gives a placement.
"""

from __future__ import annotations

from typing import Any

from scaler.engines.base import THREADING_STYLES
from scaler.errors import UsageError

DEFAULT = "tuned"


def parse_threading(text: str) -> tuple[str, ...]:
    """``tuned`` or ``tuned,defaults,model-zoo``: known names, each once, in the order given."""
    names = tuple(part.strip() for part in text.split(","))
    for name in names:
        if name not in THREADING_STYLES:
            shown = name or "(empty)"
            raise UsageError(f"unknown --threading style {shown!r}: choose from "
                             f"{', '.join(THREADING_STYLES)} (comma-separated to sweep them)")
    if len(set(names)) != len(names):
        raise UsageError(f"--threading {text!r} names a style twice")
    return names


def series_name(placement: str, style: str, styles: tuple[str, ...]) -> str:
    """The series a group belongs to: the placement alone when the run has one style and it
    is ``tuned`` (runs before ``--threading`` look the same), else ``placement-style``."""
    if styles == (DEFAULT,) or not styles:
        return placement
    return f"{placement}-{style}"


def label(entry: dict[str, Any]) -> str:
    """A point's, group's or series' placement as shown: its recorded ``series`` (``shared``,
    ``shared-model-zoo``, ``pinned-tuned``: see ``series_name``), else the placement with its
    style unless that is the default ``tuned`` or unrecorded."""
    if entry.get("series"):
        return str(entry["series"])
    style = entry.get("threading")
    placement = str(entry.get("placement"))
    return placement if style in (None, DEFAULT) else f"{placement}-{style}"
