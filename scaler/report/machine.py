"""The machine section: what the runs ran on (CPU, topology, ISA, host facts) and the
measured peaks of ``make bench`` when a bench ran on it."""

from __future__ import annotations

from typing import Any

from scaler.report.fmt import num
from scaler.report.html import badge, esc, facts, note, table
from scaler.report.inputs import Bench, Inputs

TITLE = "Machine"


def _cpulist(cpus: list[int] | None) -> str:
    from affinity.cpulist import format_cpulist

    return format_cpulist(cpus or []) or "-"


def cpu_model(host: dict[str, Any], bench: Bench | None) -> str:
    """The CPU model as recorded: in the run's host, else in a bench of the same host."""
    found = host.get("cpu_model") or (host.get("facts") or {}).get("cpu_model")
    if found:
        return esc(found)
    if bench is not None and bench.same_host and bench.doc.get("host", {}).get("cpu_model"):
        return esc(bench.doc["host"]["cpu_model"]) + " " + badge(
            "none", "from the bench", f"recorded by make bench in {bench.path}")
    return badge("none", "not recorded in run.json")


def _topology(topo: dict[str, Any]) -> str:
    pairs = [
        ("packages (sockets)", esc(topo.get("packages"))),
        ("dies", esc(topo.get("dies"))),
        ("NUMA nodes", esc(len(topo.get("nodes") or []))),
        ("physical cores", esc(topo.get("cores"))),
        ("logical CPUs", esc(topo.get("cpus"))),
        ("threads per core", esc(topo.get("threads_per_core"))),
        ("usable CPUs", esc(topo.get("usable_cpulist") or _cpulist(topo.get("usable_cpus")))),
    ]
    if topo.get("offline_cpus"):
        pairs.append(("offline CPUs", esc(_cpulist(topo["offline_cpus"]))))
    isa = topo.get("isa") or []
    pairs.append(("ISA flags (relevant)", esc(", ".join(isa)) if isa else
                  badge("none", "none of avx512 / vnni / bf16 / amx")))
    out = facts(pairs)
    rows = [(esc(n.get("id")), esc(_cpulist(n.get("cpus"))), esc(n.get("cores", "-")),
             num(n["memory_bytes"] / 2**30) + " GiB" if n.get("memory_bytes") else "-",
             esc(" ".join(str(d) for d in n.get("distances") or [])))
            for n in topo.get("nodes") or []]
    if rows:
        out += table(["node", "CPUs", "cores", "memory", "distances"], rows, numeric=(2, 3))
    for n in topo.get("notes") or []:
        out += note(esc(n))
    return out


def _host_facts(host: dict[str, Any]) -> str:
    f = host.get("facts") or {}
    if not f:
        return note("No host facts recorded (a run of an older scaler).")

    def show(value: Any) -> str:
        if value is None:
            return badge("none", "not readable")
        if isinstance(value, dict):
            return esc(", ".join(f"{k}: {v}" for k, v in value.items()) or "none")
        if isinstance(value, list):
            return esc(", ".join(map(str, value)) or "none")
        return esc(value)

    pairs = [("kernel", esc(host.get("kernel"))), ("architecture", esc(host.get("machine"))),
             ("cpufreq driver", show(f.get("cpufreq_driver"))),
             ("governors", show(f.get("governors"))), ("turbo", show(f.get("turbo"))),
             ("transparent huge pages", show(f.get("thp"))),
             ("KSM running", show(f.get("ksm_running"))),
             ("2 MiB huge pages", show(f.get("hugepages_2m"))),
             ("this host is a VM", show(f.get("hypervisor"))),
             ("hardware virtualization", show(f.get("virtualization")) if f.get(
                 "virtualization") else badge("emulated", "none: VMs run under TCG emulation")
                 if "virtualization" in f else show(None)),
             ("steal since boot", f"{f['steal_share_since_boot']:.2%}"
              if f.get("steal_share_since_boot") is not None else show(None))]
    known = {"cpufreq_driver", "governors", "turbo", "thp", "ksm_running", "hugepages_2m",
             "hypervisor", "virtualization", "steal_share_since_boot", "cpu_model"}
    pairs += [(k.replace("_", " "), show(v)) for k, v in f.items() if k not in known]
    return facts(pairs)


def _bench(bench: Bench | None) -> str:
    if bench is None:
        return note("No bench found (<code>make bench</code> writes "
                    "<code>results/bench/bench.json</code>; give another with "
                    "<code>--bench FILE</code>): no measured peaks to set the figures "
                    "against.")
    doc = bench.doc
    head = (f"From <code>{esc(bench.path)}</code>, {esc(doc.get('created', '?'))}"
            + (" (--quick: short windows)" if doc.get("quick") else "") + ".")
    if not bench.same_host:
        head += " " + badge("partial", "another host",
                            f"bench host {doc.get('host', {}).get('hostname')}")
    peak = (doc.get("sections") or {}).get("peak") or {}
    rows = []
    for prec, p in (peak.get("precisions") or {}).items():
        unit = "GOP/s" if prec == "int8" else "GFLOP/s"
        rows.append((esc(prec), f"<code>{esc(p.get('instruction'))}</code>",
                     f"{num(p.get('per_core_gops'))} {unit}",
                     f"{num(p.get('machine_gops'))} {unit}",
                     f"{num(p.get('concurrent_gops'))} {unit}"))
    body = note(head)
    if rows:
        body += table(["precision", "instruction", "per core", "per core x cores",
                       "all cores at once"], rows, numeric=(2, 3, 4))
        if peak.get("cpu_model"):
            body += note(f"Measured on {esc(peak['cpu_model'])}.")
        if peak.get("clock_ghz"):
            body += note(f"Clock from latency-bound FMA chains: {peak['clock_ghz']:.2f} GHz; "
                         f"zmm over ymm FMA throughput {peak.get('zmm_over_ymm', 0):.2f}x.")
        if peak.get("method"):
            body += note("Method: " + esc(peak["method"]))
    else:
        body += note("The bench holds no peak section"
                     + (f" (error: {esc(doc.get('errors', {}).get('peak'))})"
                        if doc.get("errors", {}).get("peak") else "") + ".")
    return body


def section(inputs: Inputs) -> str:
    """One block per measured host (simulated runs describe no real machine)."""
    by_host: dict[str, dict[str, Any]] = {}
    for r in inputs.measured():
        by_host.setdefault(r.doc.get("host", {}).get("hostname", "?"), r.doc.get("host", {}))
    if not by_host:
        return note("Only simulated runs were given: no measured machine to describe.")
    out = []
    for name, host in by_host.items():
        topo = host.get("topology") or {}
        block = facts([("host name", esc(name)), ("CPU model", cpu_model(host, inputs.bench))])
        block += "<h3>Topology and ISA</h3>" + _topology(topo)
        block += "<h3>Host facts</h3>" + _host_facts(host)
        out.append((f"<h3>{esc(name)}</h3>" if len(by_host) > 1 else "") + block)
    out.append("<h3>Measured peaks (make bench)</h3>" + _bench(inputs.bench))
    return "\n".join(out)
