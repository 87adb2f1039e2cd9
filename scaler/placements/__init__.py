"""Placements: one module per way of laying instances out, each registered by name.

``shared`` (unpinned processes, bare metal as a naive user runs it), ``pinned`` (each
instance confined to its partition, like a VM) and ``vm`` (each instance in a QEMU VM) are
built in; ``fleet`` runs any of them on the machines of a ``--hosts`` file. A new placement is
one module that subclasses ``Placement`` and calls ``register`` (a plug-in may live outside
scaler: see ``scaler.plugins``). Its own options are a frozen dataclass of
``scaler.placements.options.option`` fields named in ``Placement.options``: every scenario
command, ``suite`` and ``plan`` take them as flags, ``Settings.placement_options[name]`` carries
them, run.json records them among the requested settings, and the placement plans with them
once ``configured`` for a run. How it joins ``scaler suite`` it declares too
(``suite_side``, ``suite_only_when_real``: see ``scaler.suite_sides``).
"""

from scaler.placements.base import (
    GroupPlan,
    InstancePlan,
    Placement,
    baseline,
    check_oversubscription,
    find,
    get,
    help_text,
    parse_placements,
    placements,
    register,
)

__all__ = ["GroupPlan", "InstancePlan", "Placement", "baseline", "check_oversubscription", "find",
           "get", "help_text", "parse_placements", "placements", "register"]
