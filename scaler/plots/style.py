"""What every figure shares: the headless pyplot, a colour per placement and a marker per
placement or run, run labels that say what differs between runs, the series' labels, the
legend with one "noisy" entry, and the title naming the model, engine and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler import threadstyles
from scaler.errors import UsageError
from scaler.results import Run


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def marker_for(placement: str) -> str:
    from scaler.placements import find

    known = find(placement)
    return known.marker if known is not None else "d"


def placement_color(placement: str) -> str:
    """The same colour for a placement in every figure (registry order, then plug-ins)."""
    from scaler.placements import placements

    names = list(placements())
    k = names.index(placement) if placement in names else len(names) + hash(placement) % 3
    return f"C{k % 10}"


def run_labels(runs: list[Run], given: list[str] | None = None) -> dict[Path, str]:
    """A short label per run: the user's (``--label``, one per run), else what differs
    between the runs (engine and precision, model, machine, date), else the folder name;
    empty for a single run."""
    if given:
        if len(given) != len(runs):
            raise UsageError(f"--label given {len(given)} time(s) for {len(runs)} run(s): "
                             "give one per run, in order")
        return {r.path: label for r, label in zip(runs, given)}
    if len(runs) < 2:
        return {r.path: "" for r in runs}
    facets = {
        "engine": lambda r: f"{r.doc['effective']['engine']} {r.doc['effective']['precision']}",
        "model": lambda r: r.doc["effective"]["model"],
        "machine": lambda r: machine_name(r.doc["host"]),
        "date": lambda r: str(r.doc.get("created", ""))[:16].replace("T", " "),
    }
    differing = {k: f for k, f in facets.items() if len({f(r) for r in runs}) > 1}
    labels = {r.path: ", ".join(str(f(r)) for f in differing.values()) for r in runs}
    kinds = [bool(r.doc.get("simulated")) for r in runs]
    if set(differing) <= {"date"} and len(runs) == 2 and len(set(kinds)) == 2:
        # a measurement and its simulation (made a minute later or not): [simulated] says it
        return {r.path: "" for r in runs}
    if len(set(labels.values())) < len(runs):  # nothing tells them apart: the folders do
        labels = {r.path: r.path.name for r in runs}
    return labels


def machine_name(host: dict[str, Any]) -> str:
    """A machine as a reader tells it apart: its CPU model, or for a run that did not record
    one, its host name said to be one (a host called ``vm`` is not the placement)."""
    return host.get("cpu_model") or f'host "{host.get("hostname", "?")}"'


def series_label(s: dict[str, Any], run_label: str = "") -> str:
    label = f"{threadstyles.label(s)} ({s['engine']} {s['precision']})"
    if run_label:
        label += f" [{run_label}]"
    if s.get("simulated"):
        label += " [simulated]"
    return label + " [emulated]" if s.get("emulated") else label


def noisy_legend(ax: Any, **kwargs: Any) -> None:
    """The axes' legend with one neutral "noisy" entry for all series (other entries kept
    as they are: two series may share a label and differ in colour)."""
    from matplotlib.lines import Line2D

    handles, labels, noisy = [], [], None
    for handle, label in zip(*ax.get_legend_handles_labels()):
        if label.startswith("noisy"):
            noisy = noisy or label
            continue
        handles.append(handle)
        labels.append(label)
    if noisy:
        handles.append(Line2D([], [], marker="o", color="black", markerfacecolor="white",
                              linestyle="none", markersize=8))
        labels.append(noisy)
    ax.legend(handles, labels, **kwargs)


def figure_title(runs: list[Run], what: str) -> str:
    """What was measured (model and engine: a null-engine run measured no model) and on what
    machine (its CPU model and core count, not only a host name)."""
    from scaler.engines.registry import engines as known
    from scaler.schema import Run

    engines = []
    for r in runs:
        eff = Run.top(r.doc).effective  # typed: a field a run does not hold is None
        kind = known().get(eff.engine)
        engines.append(f"{eff.engine} engine (no inference)" if kind and not kind.infers
                       else f"{eff.model} {eff.engine} {eff.precision}")
    machines = []
    for r in runs:
        host = r.doc["host"]
        cores = (host.get("topology") or {}).get("cores")
        name = machine_name(host)
        machines.append(f"{name}, {cores} cores" if cores else name)
    return (f"{what}: {', '.join(dict.fromkeys(engines))}\n"
            f"on {'; '.join(dict.fromkeys(machines))}")
