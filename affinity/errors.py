"""Errors of the affinity package. All are bad input from the caller's point of view."""


class AffinityError(ValueError):
    """Base class: the message is one line naming what is wrong."""


class CpuListError(AffinityError):
    """A cpulist such as ``0-3,8-11`` that does not parse."""


class TopologyError(AffinityError):
    """A sysfs tree that cannot be read as a CPU topology."""


class PlanError(AffinityError):
    """A partition plan that cannot be made (too many instances, too large partitions)."""


class BindError(AffinityError):
    """Binding a process to CPUs failed (for example a CPU outside the allowed set)."""
