"""Where a process's memory is: ``/proc/PID/numa_maps`` summed per NUMA node.

Each line of numa_maps is one mapping: its policy, then ``key=value`` fields, among them
``N<node>=<pages>`` (pages of that mapping resident on the node), ``anon=<pages>`` for
private anonymous memory and ``kernelpagesize_kB``. The read-back sums the resident memory
per node, all of it and the anonymous part alone (heap, stacks, the model's weights once
loaded: what the process allocated itself, unlike shared library pages that whoever read
the file first placed).
"""

from __future__ import annotations

from typing import Any


def parse_numa_maps(text: str) -> dict[str, Any]:
    """``{"kb_by_node": {node: kB}, "anon_kb_by_node": {node: kB}}`` (node keys are str,
    as in JSON), summed over every mapping of ``text``."""
    total: dict[int, int] = {}
    anon: dict[int, int] = {}
    for line in text.splitlines():
        fields = line.split()
        page_kb = 4
        per_node: dict[int, int] = {}
        is_anon = False
        for item in fields[2:]:
            key, sep, value = item.partition("=")
            if not sep:
                continue
            if key == "kernelpagesize_kB" and value.isdigit():
                page_kb = int(value)
            elif key == "anon":
                is_anon = True
            elif key[:1] == "N" and key[1:].isdigit() and value.isdigit():
                per_node[int(key[1:])] = int(value)
        for node, pages in per_node.items():
            total[node] = total.get(node, 0) + pages * page_kb
            if is_anon:
                anon[node] = anon.get(node, 0) + pages * page_kb
    return {"kb_by_node": {str(k): total[k] for k in sorted(total)},
            "anon_kb_by_node": {str(k): anon[k] for k in sorted(anon)}}


def read_numa_maps(pid: int | str = "self") -> dict[str, Any]:
    """The summary of ``/proc/PID/numa_maps``; ``{"error": reason}`` where the kernel has
    no NUMA support or refuses to say (no exception: a read-back, not a requirement)."""
    try:
        with open(f"/proc/{pid}/numa_maps") as f:
            return parse_numa_maps(f.read())
    except OSError as exc:
        return {"error": f"/proc/{pid}/numa_maps: {exc.strerror or exc}"}


def share_on(summary: dict[str, Any], nodes: set[int], key: str = "anon_kb_by_node") -> float:
    """The share (0..1) of ``summary[key]`` on ``nodes``; 0 when nothing was read."""
    by_node = {int(k): v for k, v in (summary.get(key) or {}).items()}
    whole = sum(by_node.values())
    return sum(v for k, v in by_node.items() if k in nodes) / whole if whole else 0.0
