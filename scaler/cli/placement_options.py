"""Every registered placement's own options as flags of a command (``scaler.placements.options``).

:func:`with_placement_options` gives a command function the flags of every placement's
options (built-in and plug-in), placed before ``--out`` in its help; the function receives
them in ``**placement_options`` and :func:`placement_settings` turns them into
``Settings.placement_options`` (each placement parses and checks its own).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from scaler import placements
from scaler.placements.options import OptionSpec, build, specs_of


def specs() -> list[OptionSpec]:
    """The options of every registered placement, in registry order."""
    return [s for p in placements.placements().values() for s in specs_of(p)]


def _parameter(spec: OptionSpec) -> inspect.Parameter:
    info = typer.Option(spec.flag, help=f"{spec.help} ({spec.placement} placement)",
                        metavar=spec.metavar)
    return inspect.Parameter(spec.param, inspect.Parameter.KEYWORD_ONLY,
                             default=spec.cli_default, annotation=Annotated[spec.cli_type, info])


def with_placement_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (which takes ``**placement_options``) with one typer option per placement
    option. One that clashes with the function's own is left out and reported as a plug-in
    failure (``scaler.plugins.check``: one line, exit 2)."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    names = {p.name for p in own}
    added = []
    for spec in specs():
        if spec.param in names:  # the command's own option wins; the run refuses to start
            from scaler import plugins

            plugins.refuse(f"placement {spec.placement!r}: option {spec.flag} clashes with an "
                           f"option of `scaler {func.__name__}`")
            continue
        added.append(_parameter(spec))
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    at = next((k for k, p in enumerate(keyword) if p.name == "out"), len(keyword))
    params = keyword[:at] + added + keyword[at:]
    extra = {p.name for p in added}

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in extra}
        return func(**kwargs, **given)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # typer reads the signature above, not func's
    return command


def placement_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """``Settings.placement_options`` from command values by parameter name: each placement
    with options parses and checks its own (UsageError, one line)."""
    out = {}
    for name, placement in placements.placements().items():
        opts = build(placement, given)
        if opts is not None:
            out[name] = opts
    return out
