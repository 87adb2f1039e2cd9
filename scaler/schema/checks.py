"""How a run document's values are checked: one rule per kind of field, and the error that
names the field.

A rule takes a value and returns None when it is fine, else what the value should be
(``"a finite number >= 0"``); JSON's ``Infinity`` and ``NaN`` are not figures. A value that
breaks its rule is a :class:`FieldError` naming the field's path in the document
(``points[0].throughput_ips``); ``scaler.results.load_run`` turns it into a one-line
ResultsError naming the file, while a writer that builds a bad record gets it as it is (a
programming error, with its traceback).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # None when the value is fine, else what it should be

STATUSES = ("running", "complete", "partial")


class FieldError(Exception):
    """A value that is not what its field holds: ``field`` (its path in the document),
    ``value`` (None: missing) and what it ``should`` be."""

    def __init__(self, field: str, value: Any, should: str, null: bool = False) -> None:
        self.field, self.value, self.should, self.null = field, value, should, null
        super().__init__(self.message())

    def message(self) -> str:
        """``null``: the field is there, holding null where a value is needed."""
        shown = ("not null" if self.null else "missing") if self.value is None \
            else f"not {show(self.value)}"
        return f"{self.field} should be {self.should}, {shown}"


def show(value: Any) -> str:
    """A value as an error message shows it (short; special floats as JSON writes them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    if isinstance(value, dict | list):
        return f"{'an object' if isinstance(value, dict) else 'a list'}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(text) - 57} more characters)"


def path(where: str, key: str | int) -> str:
    """``where`` and one step further: ``groups[1]`` + ``id``, ``groups`` + 1."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def number(low: float | None = None, high: float | None = None, above: bool = False,
           integer: bool = False) -> Check:
    """A finite number (an integer when asked) within bounds; ``above``: strictly above
    ``low``."""
    kind = "a whole number" if integer else "a finite number"
    if low is not None:
        kind += f" {'>' if above else '>='} {low:g}"
    if high is not None:
        kind += f" <= {high:g}"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return kind
        if integer and not isinstance(value, int):
            return kind
        if not math.isfinite(value):
            return kind
        if low is not None and (value <= low if above else value < low):
            return kind
        if high is not None and value > high:
            return kind
        return None

    return check


def kind(types: type | tuple[type, ...], name: str) -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, types) and not (
            types is not bool and isinstance(value, bool)) else name

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(choices)

    return check


def list_of(item: Check, length: int | None = None, nulls: bool = False) -> Check:
    """A list of values that each keep ``item``'s rule (or are null, with ``nulls``)."""
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            return f"a list of {length} values" if length is not None else "a list"
        for v in value:
            if (v is not None or not nulls) and item(v) is not None:
                return f"a list of {item(v)}"
        return None

    return check


def summaries(*keys: str) -> Check:
    """A list of objects holding ``keys``, each a finite figure or null (a point's latency
    per repeat)."""
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "a list"
        for v in value:
            if not isinstance(v, dict) or any(k not in v for k in keys) or any(
                    v[k] is not None and LATENCY(v[k]) is not None for k in keys):
                return f"a list of objects of {', '.join(keys)} (finite numbers or null)"
        return None

    return check


ANY = kind(object, "a value")
FIGURE = number(0)
LATENCY = number()  # finite; the server scenario has recorded a negative min (see notes)
COUNT = number(0, integer=True)
POSITIVE_INT = number(1, integer=True)
POSITIVE = number(0, above=True)
TEXT = kind(str, "a string")
FLAG = kind(bool, "true or false")
OBJECT = kind(dict, "an object")
LIST = kind(list, "a list")
TEXTS = list_of(TEXT)


def check_not_null(part: dict[str, Any], keys: tuple[str, ...], fields: dict[str, Check],
                   where: str) -> None:
    """Each of ``keys`` that ``part`` holds is not null (readers take it as it is)."""
    for key in keys:
        if key in part and part[key] is None:
            rule = fields.get(key)
            raise FieldError(path(where, key), None, (rule(None) if rule else None)
                             or "an object", null=True)


def check_fields(part: dict[str, Any], fields: dict[str, Check], where: str) -> None:
    """Each field of ``part`` that is present and not null keeps its rule."""
    for key, rule in fields.items():
        value = part.get(key)
        if value is None:
            continue
        should = rule(value)
        if should is not None:
            raise FieldError(path(where, key), value, should)


def check_latency(lat: Any, where: str) -> None:
    """A latency summary: every figure finite (``samples`` a count); its ``early_stopping``
    estimates likewise (the summary itself is checked as an object by its field's rule)."""
    if not isinstance(lat, dict):
        return
    for key, value in lat.items():
        if value is None and key == "samples":
            raise FieldError(path(where, key), value, COUNT(value) or "", null=True)
        if value is None:
            continue
        if key == "early_stopping":
            if not isinstance(value, dict):
                raise FieldError(path(where, key), value, "an object")
            check_latency(value, path(where, key))
            continue
        rule = COUNT if key == "samples" else LATENCY
        should = rule(value)
        if should is not None:
            raise FieldError(path(where, key), value, should)
