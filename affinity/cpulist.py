"""The kernel's cpulist format (``0-3,8-11``), parsed strictly and formatted compactly.

Strict because a half-read list silently shrinks a partition: ``1-``, ``a``, ``3-1`` or
``1,,2`` is an error naming the text, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from affinity.errors import CpuListError

# Larger than any kernel's NR_CPUS (8192): guards against "0-99999999" eating memory.
MAX_CPU = 65535

_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-3,8-11"`` -> ``(0, 1, 2, 3, 8, 9, 10, 11)``, sorted and unique.

    Surrounding whitespace (the newline sysfs ends files with) is ignored; an empty list
    is the empty tuple. The same rule serves CPU and NUMA node lists.
    """
    body = text.strip()
    if not body:
        return ()
    found: set[int] = set()
    for item in body.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise CpuListError(f"malformed cpulist {text.strip()!r}: bad item {item!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise CpuListError(f"malformed cpulist {text.strip()!r}: range {item!r} runs backwards")
        if last > MAX_CPU:
            raise CpuListError(f"malformed cpulist {text.strip()!r}: {last} is above {MAX_CPU}")
        found.update(range(first, last + 1))
    return tuple(sorted(found))


def format_cpulist(cpus: Iterable[int]) -> str:
    """``(0, 1, 2, 3, 8)`` -> ``"0-3,8"``; the inverse of :func:`parse_cpulist`."""
    ordered = sorted(set(cpus))
    if ordered and ordered[0] < 0:
        raise CpuListError(f"negative CPU number {ordered[0]} in {ordered}")
    runs: list[str] = []
    start = prev = None
    for cpu in ordered:
        if prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            runs.append(_run(start, prev))
        start = prev = cpu
    if start is not None:
        runs.append(_run(start, prev))
    return ",".join(runs)


def _run(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"
