"""Error text of bounded length: a hosts file or a remote host can hand us megabytes."""

from __future__ import annotations

from typing import Any

LINE_MAX = 200  # characters of an error line kept
VALUE_MAX = 60  # characters of a value quoted inside one


def clip(text: str, limit: int = LINE_MAX) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters cut)"


def quoted(value: Any, limit: int = VALUE_MAX) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (saying so); a string
    is cut inside its quotes, which stay balanced."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value) - limit} more characters cut)"
    text = repr(value) if len(str(value)) <= 4 * limit else repr(str(value)[:limit + 8])
    if len(text) <= limit:
        return text
    whole = len(repr(value)) if len(str(value)) <= 4 * limit else len(str(value)) + 2
    return f"{text[:limit]}... ({whole - limit} more characters cut)"
