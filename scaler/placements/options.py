"""A placement's own options: a small frozen dataclass per placement, declared with
:func:`option`, that the command line turns into flags and the run records.

A placement names its class in ``Placement.options``. Each field is one option:

- its flag (``--NAME-FIELD`` unless given, e.g. ``vm``'s ``--accel``), help and command-line
  type (``cli_type``: what the flag takes; ``parse`` turns that into the field's value, e.g.
  ``--vm-memory 2G`` into 2048 MiB);
- its key in the run's ``requested`` settings (``NAME_FIELD`` unless given).

``scaler.cli.placement_options`` adds every registered placement's flags to the scenario
commands; ``Settings.placement_options`` carries the values by placement name; the placement
checks its own (``Placement.check_options``: a UsageError, one line). Nothing here imports
the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaler.placements.base import Placement

_META = "scaler_option"


def option(default: Any, *, help: str, flag: str | None = None, cli_type: Any = None,
           parse: Callable[[Any], Any] | None = None, metavar: str | None = None,
           record_key: str | None = None) -> Any:
    """A field of a placement's options dataclass. ``cli_type`` is what the flag takes (the
    field's own type unless given); ``parse`` turns a given value into the field's (not
    called for the flag's default, which is the field's default)."""
    meta = {"help": help, "flag": flag, "cli_type": cli_type, "parse": parse,
            "metavar": metavar, "record_key": record_key}
    return dataclasses.field(default=default, metadata={_META: meta})


@dataclass(frozen=True)
class OptionSpec:
    """One placement option as the command line and the run record see it."""

    placement: str
    field: str
    flag: str  # e.g. --vm-memory
    param: str  # the command function's parameter (the flag without dashes, _ for -)
    help: str
    cli_type: Any
    cli_default: Any
    parse: Callable[[Any], Any] | None
    metavar: str | None
    record_key: str  # its key in run.json's ``requested`` (e.g. vm_memory_mb)


def specs_of(placement: Placement) -> tuple[OptionSpec, ...]:
    """The options ``placement`` declares (none without an options class)."""
    cls = type(placement).options
    if cls is None:
        return ()
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise ValueError(f"placement {placement.name!r}: options must be a frozen dataclass")
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            raise ValueError(f"placement {placement.name!r}: option {f.name!r} is not declared "
                             "with scaler.placements.options.option(...)")
        default = f.default if f.default is not dataclasses.MISSING else None
        flag = meta["flag"] or f"--{placement.name}-{f.name}".replace("_", "-")
        out.append(OptionSpec(
            placement=placement.name, field=f.name, flag=flag,
            param=flag.lstrip("-").replace("-", "_"), help=meta["help"],
            cli_type=meta["cli_type"] or hints.get(f.name, str), cli_default=default,
            parse=meta["parse"], metavar=meta["metavar"],
            record_key=meta["record_key"] or f"{placement.name}_{f.name}"))
    return tuple(out)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation this process cannot resolve: the flag takes text
        return {}


def check_clashes(placement: Placement, others: Iterable[Placement],
                  reserved: Iterable[str]) -> None:
    """ValueError when ``placement``'s flags or record keys are taken by another placement's
    or by a setting of every run (``reserved``: ``Settings`` fields)."""
    mine = specs_of(placement)
    taken_flags: dict[str, str] = {}
    taken_keys: dict[str, str] = {k: "the run settings" for k in reserved}
    for other in others:
        if other.name == placement.name:
            continue
        for s in specs_of(other):
            taken_flags[s.flag] = f"placement {other.name!r}"
            taken_keys[s.record_key] = f"placement {other.name!r}"
    for s in mine:
        if s.flag in taken_flags:
            raise ValueError(f"placement {placement.name!r}: option {s.flag} is already "
                             f"{taken_flags[s.flag]}'s")
        if s.record_key in taken_keys:
            raise ValueError(f"placement {placement.name!r}: option key {s.record_key!r} "
                             f"is already {taken_keys[s.record_key]}'s")


def build(placement: Placement, given: Mapping[str, Any]) -> Any:
    """``placement``'s options from command-line values by parameter name (a value left at
    the flag's default keeps the field's default), checked by the placement; None when it
    declares none."""
    cls = type(placement).options
    if cls is None:
        return None
    values = {}
    for s in specs_of(placement):
        if s.param not in given:
            continue
        value = given[s.param]
        if value is None or value == s.cli_default:
            continue
        values[s.field] = s.parse(value) if s.parse is not None else value
    opts = cls(**values)
    placement.check_options(opts)
    return opts


def record(placement: Placement, opts: Any) -> dict[str, Any]:
    """``opts`` (``placement``'s, or its defaults when None) under their run-record keys."""
    if type(placement).options is None:
        return {}
    opts = opts if opts is not None else type(placement).options()
    return {s.record_key: getattr(opts, s.field) for s in specs_of(placement)}
