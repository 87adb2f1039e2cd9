"""What ``make testbed`` prints after the guest's commands: per worker of every run, the
CPUs it was allowed (and their guest nodes), its memory policy and where its memory was."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from affinity.cpulist import format_cpulist

if TYPE_CHECKING:
    from scaler.testbed import CommandResult


def node_map(results: list[CommandResult]) -> dict[int, int]:
    """Guest CPU -> guest node, from the first ``topology --json`` among ``results``."""
    for res in results:
        if res.argv[:1] == ["topology"] and "--json" in res.argv and res.rc == 0:
            return {cpu: n["id"] for n in res.json()["nodes"] for cpu in n["cpus"]}
    return {}


def worker_lines(run: dict[str, Any], nodes: dict[int, int]) -> list[str]:
    out = []
    for group in run.get("groups", []):
        label = (f"{group.get('engine')} {group.get('placement')} N={group.get('instances')}"
                 f" repeat {group.get('repeat', 0)}")
        for inst in group.get("per_instance", []):
            binding = inst.get("binding") or {}
            cpus = binding.get("cpus") or []
            on = sorted({nodes.get(c, -1) for c in cpus})
            memory = inst.get("memory_nodes") or {}
            anon = memory.get("anon_kb_by_node") or memory.get("error", "?")
            out.append(f"  {label} worker {inst.get('index')}: CPUs "
                       f"{format_cpulist(cpus) if cpus else '?'} (node(s) "
                       f"{','.join(map(str, on))}), memory {binding.get('memory_policy')}, "
                       f"{binding.get('memory_migrated') or 'no migration'}; anonymous kB by "
                       f"node {anon}")
    return out


def report_lines(results: list[CommandResult]) -> list[str]:
    nodes = node_map(results)
    lines = ["per-worker read-back in the guest:"]
    for res in results:
        for run in res.runs():
            lines += worker_lines(run, nodes)
    return lines
