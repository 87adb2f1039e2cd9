"""The placement interface: how N instances are laid out on a machine, and where they run.

A placement owns everything that differs between ``shared``, ``pinned``, ``vm`` (and any
plug-in): planning each instance's CPUs, memory nodes and threads on a topology, the worker's
own view of that partition (a guest numbers its vCPUs from 0), the target that starts the
workers, the memory check before a group, the checks before a run, and what the simulator
needs to know about it. Scenario, session, CLI, plot and simulator code only call these
methods; they never compare placement names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scaler.errors import UsageError

if TYPE_CHECKING:
    from affinity import Plan, Topology
    from scaler.engines import EngineSpec
    from scaler.settings import Settings
    from scaler.targets import Target


@dataclass(frozen=True)
class InstancePlan:
    """One instance of a group as planned: its partition on the machine that runs it, and the
    same partition as the worker pins itself to it (its own CPU and node numbers)."""

    index: int
    threads: int
    cpus: tuple[int, ...] | None = None  # None: unpinned, any CPU of the machine
    nodes: tuple[int, ...] | None = None
    worker_cpus: tuple[int, ...] | None = None
    worker_nodes: tuple[int, ...] | None = None
    host: str | None = None  # the machine of a fleet (--hosts); None: this one

    def partition(self) -> dict[str, Any] | None:
        """What results record as the instance's partition (None when unpinned)."""
        if self.cpus is None:
            return None
        return {"cpus": list(self.cpus), "nodes": list(self.nodes or ())}


@dataclass(frozen=True)
class GroupPlan:
    """N instances laid out by one placement. ``layout`` is recorded in the group as is:
    cores, cpus, oversubscribed, oversubscription and the placement's own keys."""

    placement: str
    instances: tuple[InstancePlan, ...]
    layout: Mapping[str, Any] = field(default_factory=dict)

    @property
    def partitions(self) -> list[dict[str, Any] | None]:
        return [i.partition() for i in self.instances]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self.layout.get("plan_warnings", ()))


@dataclass(frozen=True)
class DryRunView:
    """What ``scaler plan --placement NAME`` adds to a plan without starting anything: an
    entry per partition and one for the whole (both under ``key`` in ``--json``), and lines
    of text after the partition table."""

    key: str
    per_partition: list[dict[str, Any]]
    summary: dict[str, Any]
    lines: list[str]


class Placement:
    """A way to lay instances out. Subclasses set the class attributes and ``plan``."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for --placement help
    marker: ClassVar[str] = "d"  # matplotlib marker of its series in plots
    baseline: ClassVar[bool] = False  # bare metal: other placements' ratios are taken over it
    virtualized: ClassVar[bool] = False  # the simulator's vm_* terms apply to its instances
    # why it cannot run on the machines of --hosts ("" when it can), after "the NAME placement"
    local_only: ClassVar[str] = ""
    # its own options: a frozen dataclass of ``scaler.placements.options.option`` fields (the
    # command line's flags, ``Settings.placement_options[name]``, run.json's requested keys)
    options: ClassVar[type | None] = None
    # how ``scaler suite`` uses it (``scaler.suite_sides``): "baseline" (bare metal: the side
    # the others are set against), "vm-like" (set against bare metal) or "" (left out)
    suite_side: ClassVar[str] = ""
    # a vm-like side that joins the suite only where its timings are real (``emulation``
    # says why not), unless the suite is asked for it (``--vm``)
    suite_only_when_real: ClassVar[bool] = False

    _chosen: Any = None  # the options of a run (``configured``); None: the defaults

    def check_options(self, options: Any) -> None:
        """Refuse options this placement cannot use (UsageError, one line)."""

    def options_of(self, settings: Settings) -> Any:
        """This placement's options in ``settings`` (its defaults where none were given)."""
        return settings.options_of(self.name)

    @property
    def chosen(self) -> Any:
        """The options this instance plans with (``plan`` has no settings): a run's, once
        ``configured``; the defaults in the registry's instance (None: it declares none)."""
        cls = type(self).options
        if self._chosen is not None or cls is None:
            return self._chosen
        return cls()

    def configured(self, settings: Settings) -> Placement:
        """This placement as a run with ``settings`` uses it: a copy whose ``chosen`` are
        the run's options (itself when it declares none)."""
        if type(self).options is None:
            return self
        import copy

        clone = copy.copy(self)
        clone._chosen = self.options_of(settings)
        return clone

    def plan(self, topology: Topology, n: int, *, smt: bool = False,
             cores_per_instance: int | None = None) -> GroupPlan:
        raise NotImplementedError

    def make_target(self, settings: Settings, topology: Topology) -> Target | None:
        """The target that starts this placement's workers; None: the session's own (local
        processes). Made once per run, on the first group that needs it."""
        return None

    def preflight(self, settings: Settings, topology: Topology, spec: EngineSpec) -> None:
        """Checks before any worker of the run starts (UsageError when the run cannot work)."""
        from scaler.fleets import wanted

        fleet = wanted(settings)
        if self.local_only and fleet:
            raise UsageError(f"the {self.name} placement {self.local_only}")
        if settings.cores_per_instance and not fleet:  # a fleet: per group
            for n in settings.instances:
                check_oversubscription(self.plan(topology, n, smt=settings.smt,
                                                 cores_per_instance=settings.cores_per_instance),
                                       settings.oversubscribe)

    def dry_run(self, topology: Topology, plan: Plan, settings: Settings) -> DryRunView | None:
        """What this placement would start for each partition of ``plan`` (None: nothing
        beyond the partitions themselves)."""
        return None

    def notes(self, settings: Settings) -> list[str]:
        """What a user should know before the run starts (printed on stderr)."""
        return []

    def emulation(self, settings: Settings) -> str:
        """Why this placement's timings would not be real here ("" when they are: e.g. VMs
        under TCG emulation)."""
        return ""

    def joins_suite(self, settings: Settings, asked: bool) -> tuple[str, str]:
        """How this placement joins ``scaler suite`` here: its side ("baseline", "vm-like"
        or "": not at all) and why a declared side is left out ("" when it is not)."""
        from scaler.fleets import wanted

        if not self.suite_side or self.local_only and wanted(settings):
            return "", ""
        if self.suite_only_when_real and not asked:
            why = self.emulation(settings)
            if why:
                return "", f"{why} (add --vm to measure them anyway)"
        return self.suite_side, ""

    def check_memory(self, target: Target, plan: GroupPlan, settings: Settings,
                     worker_gb: float) -> None:
        """Refuse clearly when the group's workers cannot fit in this machine's memory."""
        check_local_memory(len(plan.instances), worker_gb, settings)


def check_oversubscription(plan: GroupPlan, allowed: bool) -> None:
    """Refuse a plan of fixed-size instances (its placement used ``cores_per_instance`` and
    recorded it in the layout) that needs more physical cores than the machine has, unless
    oversubscription was asked for (``--oversubscribe``). Placements that size each instance
    for the whole machine (``shared``) record no ``cores_per_instance`` and are never refused
    here."""
    k = plan.layout.get("cores_per_instance")
    if not k or not plan.layout.get("oversubscribed") or allowed:
        return
    n = len(plan.instances)
    raise UsageError(f"{plan.placement}: {n} instances x {k} core(s) need {n * k} physical cores "
                     f"but only {plan.layout.get('cores')} are usable: pass --oversubscribe to "
                     "share cores round-robin, or ask for fewer instances or fewer "
                     "--cores-per-instance")


def check_local_memory(n: int, worker_gb: float, settings: Settings,
                       batch: int | None = None) -> None:
    """Refuse ``n`` workers of ``worker_gb`` each (a ``scaler.footprint.Footprint``: measured
    for this model once it ran, conservative before) that this machine cannot hold."""
    from scaler.footprint import check

    check(n, worker_gb, getattr(worker_gb, "source", "estimated"), settings.engine,
          settings.model, batch or settings.batch, available_memory_bytes())


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


BUILTIN = ("shared", "pinned", "vm")
_PLACEMENTS: dict[str, Placement] = {}


def register(placement: Placement) -> Placement:
    """Add a placement instance to the registry (plug-ins call this when imported).
    ValueError for a name, option flag or option record key already taken."""
    import dataclasses

    from scaler.placements.options import check_clashes
    from scaler.settings import Settings

    name = placement.name
    if name in _PLACEMENTS and type(_PLACEMENTS[name]) is not type(placement):
        raise ValueError(f"placement {name!r} is already registered")
    check_clashes(placement, _PLACEMENTS.values(),
                  [f.name for f in dataclasses.fields(Settings)])
    _PLACEMENTS[name] = placement
    return placement


def placements() -> dict[str, Placement]:
    """Every registered placement by name: built-in ones first, then plug-ins."""
    _load_builtins()
    from scaler.plugins import in_order

    return in_order(_PLACEMENTS, BUILTIN)


def get(name: str) -> Placement:
    known = placements()
    if name not in known:
        from scaler.plugins import check

        check()  # a plug-in that failed to load is the likelier cause
        raise UsageError(f"unknown placement {name!r}: choose from {', '.join(known)}")
    return known[name]


def find(name: str) -> Placement | None:
    """The placement of a recorded group, or None for one this process does not know."""
    return placements().get(name)


def parse_placements(text: str) -> tuple[str, ...]:
    """``shared,pinned``: known names, in order, without repeats."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    known = placements()
    choices = ", ".join(known)
    bad = [n for n in names if n not in known]
    if bad:
        raise UsageError(f"unknown placement in {text!r}: choose from {choices}")
    if not names:
        raise UsageError(f"no placement given: choose from {choices}")
    return tuple(dict.fromkeys(names))


def help_text() -> str:
    return ", ".join(placements())


def baseline() -> str | None:
    return next((p.name for p in placements().values() if p.baseline), None)


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    from scaler import plugins

    for module in BUILTIN:  # each registers itself, in this order (help, choices)
        importlib.import_module(f"scaler.placements.{module}")
    plugins.load()
