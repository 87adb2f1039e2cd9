"""What the runtime threads of each group did, as ``scaler show`` says it in one line.

Read from the instances' ``thread_readback`` and ``spin`` (``scaler.worker.threads``): which
CPUs each instance's compute threads were bound to, whether instances stacked (thread k of
every instance on the same CPU k), sat each inside its own partition, or were not bound per
thread at all, and the share of the idle CPU time their runtimes spent spinning.
"""

from __future__ import annotations

from typing import Any

from scaler.threadstyles import label


def stacking(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """How the compute threads of a group's instances sat: ``stacked`` (two or more instances
    bound thread by thread to the same CPUs), ``partitioned`` (each instance's CPUs its own,
    disjoint from the others'), ``unbound`` (no compute thread bound to fewer CPUs than its
    process), ``overlapping`` (anything else), or ``unknown`` (no read-back)."""
    backs = [i.get("thread_readback") for i in instances]
    if not backs or any(b is None for b in backs):
        return {"kind": "unknown", "cpus": []}
    bound = [tuple(b.get("bound_cpus") or ()) for b in backs]
    process = [b.get("process_cpus") for b in backs]
    if all(bound) and len(set(bound)) == 1 and len(bound) > 1:
        return {"kind": "stacked", "cpus": list(bound[0])}
    if not any(bound):
        if len(backs) > 1 and _disjoint(process):
            return {"kind": "partitioned", "cpus": process}
        return {"kind": "unbound", "cpus": process}
    if _disjoint(process):
        return {"kind": "partitioned", "cpus": process}
    return {"kind": "overlapping", "cpus": [list(b) for b in bound]}


def _disjoint(cpulists: list[Any]) -> bool:
    from affinity.cpulist import parse_cpulist

    seen: set[int] = set()
    for text in cpulists:
        try:
            cpus = set(parse_cpulist(text)) if text else set()
        except ValueError:
            return False
        if not cpus or cpus & seen:
            return False
        seen |= cpus
    return True


def spin_share(instances: list[dict[str, Any]]) -> float | None:
    """The largest spin share among the instances (None when none was measured)."""
    shares = [(i.get("spin") or {}).get("share") for i in instances]
    shares = [s for s in shares if s is not None]
    return max(shares) if shares else None


def group_line(group: dict[str, Any]) -> str | None:
    """``shared-model-zoo x2 (threading model-zoo): compute threads of 2 instances on CPUs
    0,1 (stacked: thread k of every instance on CPU k); spin 63% of idle CPU time``."""
    insts = group.get("per_instance") or []
    if not any(i.get("thread_readback") for i in insts):
        return None
    st = stacking(insts)
    n = len(insts)
    kind = st["kind"]
    if kind == "stacked":
        where = (f"compute threads of {n} instances on CPUs {','.join(st['cpus'])} (stacked: "
                 "thread k of every instance on CPU k)")
    elif kind == "partitioned":
        where = (f"each of {n} instance(s) inside its own CPUs ("
                 f"{'; '.join(str(c) for c in st['cpus'])})")
    elif kind == "unbound":
        where = f"compute threads not pinned per thread (CPUs {'; '.join(map(str, st['cpus']))})"
    elif kind == "overlapping":
        where = f"compute threads bound to overlapping CPUs {st['cpus']}"
    else:
        where = "thread placement not read back"
    by = {((i.get("thread_readback") or {}).get("bound_by")) for i in insts} - {None}
    if by:
        where += f", bound by {' and '.join(sorted(by))}"
    share = spin_share(insts)
    spin = "spin not measured" if share is None else f"spin {share:.0%} of idle CPU time"
    return (f"threads {label(group)} x{group.get('instances')} (threading "
            f"{group.get('threading') or 'tuned'}): {where}; {spin}")


def thread_lines(groups: list[dict[str, Any]]) -> list[str]:
    """One line per group that read its threads back, in order."""
    return [line for g in groups if (line := group_line(g)) is not None]
