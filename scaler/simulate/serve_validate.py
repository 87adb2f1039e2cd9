"""The simulated server against a measured one: each measured server run replayed on a model
calibrated on other runs (the same seeds, probes and search), and the held-out error of its
peak rate (``scaler simulate CAL --scenario server --validate SERVER_RUN``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scaler.simulate.serve import Served, ServeSettings, no_server_runs


def validate(measured: list[Any], calibration: list[Any], queries: int | None,
             given: dict[str, float]) -> tuple[dict[str, Any], Any, list[tuple[Any, Served]]]:
    """Held-out check of the simulated peak: calibrate the model on ``calibration``
    (closed-loop runs; never a server run), replay each measured server run's search with
    its own settings on its own machine and layouts, and compare the peaks."""
    from scaler.errors import UsageError
    from scaler.simulate.layout import recorded_layout
    from scaler.simulate.machine import topology_from_dict
    from scaler.simulate.model import calibrate
    from scaler.summaries import server_results

    servers = [r for r in measured if r.scenario == "server"]
    if not servers:
        raise UsageError("--validate with --scenario server needs a measured server run "
                         "(scaler server --find-peak)")
    no_server_runs(calibration)
    if not calibration:
        raise UsageError("--validate with --scenario server needs calibration runs (scaling "
                         "or latency runs of the same engine) as arguments")
    model = calibrate(calibration).with_given(given)
    rows = []
    replays = []
    for m in servers:
        if m.doc.get("simulated"):
            raise UsageError(f"{m.path} is simulated, not a measurement")
        what = (m.doc["effective"]["engine"], m.doc["effective"]["precision"],
                m.doc["effective"]["model"])
        if what != (model.engine, model.precision, model.model):
            raise UsageError(f"{m.path} is {' '.join(what)}; the calibration runs are "
                             f"{model.engine} {model.precision} {model.model}")
        settings = ServeSettings.of_run(m.doc, queries)
        run = Served(model, settings)
        replays.append((m, run))
        topo = topology_from_dict(m.doc["host"]["topology"], str(m.path))
        found = server_results(m.doc, m.doc.get("points") or [])
        peaks = found.get("peak_qps") or {}
        for layout_name in peaks:
            group = next(g for g in m.doc["groups"] if g.get("probe")
                         and g.get("layout") == layout_name)
            layout = recorded_layout(topo, group)
            sim = run.find_peak(layout)
            measured_peak = peaks[layout_name]
            failing = [r["target_qps"] for r in found["results"]
                       if r["layout"] == layout_name and not r["meets_bound"]
                       and (measured_peak is None or r["target_qps"] > measured_peak)]
            row = {"run": str(m.path), "layout": layout_name,
                   "measured_peak_qps": measured_peak,
                   "measured_first_failing_qps": min(failing) if failing else None,
                   "simulated_peak_qps": sim["peak_qps"],
                   "simulated_first_failing_qps": sim["first_failing_qps"],
                   "simulated_probes": sim["probes"]}
            if measured_peak and sim["peak_qps"]:
                row["error"] = sim["peak_qps"] / measured_peak - 1.0
            rows.append(row)
    errors = [abs(r["error"]) for r in rows if r.get("error") is not None]
    report = {"scenario": "server", "calibration_runs": [str(r.path) for r in calibration],
              "layouts": rows,
              "mean_abs_error": float(np.mean(errors)) if errors else None,
              "max_abs_error": float(np.max(errors)) if errors else None,
              "note": "both searches probe the same grid of rates (same start and "
                      "precision), so an error is a multiple of the search's steps; "
                      "held out: the model never saw the server run"}
    return report, model, replays


def lines(report: dict[str, Any]) -> list[str]:
    def qps(v: float | None) -> str:
        return "none" if v is None else f"{v:g}"

    out = [f"held-out peak rate (calibrated on {len(report['calibration_runs'])} run(s), "
           "never on the server run):"]
    for r in report["layouts"]:
        err = r.get("error")
        out.append(f"  {r['layout']}: measured {qps(r['measured_peak_qps'])} qps (first "
                   f"failing {qps(r['measured_first_failing_qps'])}), simulated "
                   f"{qps(r['simulated_peak_qps'])} qps (first failing "
                   f"{qps(r['simulated_first_failing_qps'])})"
                   + ("" if err is None else f": error {err:+.1%}"))
    if report["mean_abs_error"] is not None:
        out.append(f"  mean |error| {report['mean_abs_error']:.1%}, max "
                   f"{report['max_abs_error']:.1%} over {len(report['layouts'])} layout(s)")
    out.append(f"  note: {report['note']}")
    return out
