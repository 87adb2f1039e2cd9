"""The simulated server scenario: open-loop Poisson arrivals into one shared queue.

The measured side (``scaler.serving``) is mirrored rule for rule, so a simulated peak is what
a measurement with the same settings would find if the instance model were the machine:

- arrivals are ``serving.poisson_schedule(rate, count, seed)`` itself, with the measured
  run's seed rule (``seed * 1000 + repeat``) and probe size (``server.request_count``);
- one FIFO queue; an idle instance takes the oldest requests by ``serving._Queue.take``'s
  rule (at most ``max_batch``; a partial batch once ``batch`` are queued without a timeout,
  after ``batch_timeout`` for the oldest, or once every request has arrived), idle
  instances are taken first-idle-first, and the queue is served on an arrival, a
  completion or the batch timer, as ``serving._serve`` does;
- a query is padded to the engine's batch (``max_batch``), so its work is that batch's,
  drawn from the calibrated instance model and served at the rate the layout's sharing
  gives it (``rates.rates``, recomputed whenever an instance goes busy or idle, as the
  closed-loop model does): N instances slow each other as they do in the scaling model;
- latency counts from the scheduled arrival; a probe ends as soon as more requests are
  over the bound than its percentile allows (``stoprule.allowed_over``), and a
  backlog that has not drained ``max(5 s, 10 x bound, 3 x a query)`` after the last
  arrival makes the run invalid;
- a probe passes when every repeat is valid and the early-stopping estimate of the pooled
  latency (``points.point_of``, ``points.decision_latency``) meets the bound, and the rates
  come from the measured search itself (``server.PeakSearch``).

What the simulated generator does not have: lag (it issues at the scheduled time) and host
noise; the model's limits are the instance model's (``scaler simulate --help``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaler.simulate.serve_kernel import run_serve


@dataclass(frozen=True)
class ServeSettings:
    """What a simulated server run mirrors of ``scaler server``'s settings."""

    latency_bound_ms: float = 100.0
    stat: str = "p99"
    batch: int = 1
    max_batch: int = 1
    batch_timeout_ms: float = 0.0
    min_queries: int = 100
    min_duration_s: float = 10.0
    repeat: int = 1
    seed: int = 0
    peak_precision: float = 0.05
    target_qps: float | None = None  # the search's start (None: the closed-loop capacity)
    queries: int | None = None  # requests per probe instead of the run rules

    def policy(self) -> Any:
        from scaler.serving import ServePolicy

        return ServePolicy(batch=self.batch, max_batch=self.max_batch,
                           batch_timeout_s=self.batch_timeout_ms / 1000.0)

    def count(self, rate: float) -> int:
        """Requests of a probe at ``rate``: the measured rule, or ``queries`` (at least what
        the early-stopping estimate needs)."""
        from scaler.scenarios.server import request_count

        if self.queries is not None:
            return request_count(self.stat, 0.0, self.queries, 0.0)
        return request_count(self.stat, rate, self.min_queries, self.min_duration_s)

    def allowed_over(self, count: int) -> int:
        """Requests over the bound a probe of ``count`` may hold (-1: no bound)."""
        from dataclasses import replace

        from scaler.outcomes import RunRules
        from scaler.scenarios.server import PERCENTILE
        from scaler.stoprule import allowed_over

        p = PERCENTILE.get(self.stat)
        if p is None:
            return -1
        allowed = allowed_over(replace(RunRules(), min_queries=count,
                                       latency_bound_ms=self.latency_bound_ms,
                                       bound_percentile=p))
        return -1 if allowed is None else allowed

    @classmethod
    def of_run(cls, doc: dict[str, Any], queries: int | None = None) -> ServeSettings:
        """The settings a measured server run used (its ``requested`` and rules)."""
        req = doc["requested"]
        rules = doc["effective"].get("rules") or {}
        batch = int(req.get("batch") or 1)
        return cls(latency_bound_ms=float(req["latency_bound_ms"]), stat=req["stat"],
                   batch=batch, max_batch=max(batch, int(req.get("serve_max_batch") or batch)),
                   batch_timeout_ms=float(req.get("batch_timeout_ms") or 0.0),
                   min_queries=int(rules.get("min_queries", req.get("min_queries", 100))),
                   min_duration_s=float(rules.get("min_duration_s",
                                                  req.get("min_duration_s", 10.0))),
                   repeat=int(req.get("repeat") or 1), seed=int(req.get("seed") or 0),
                   peak_precision=float(req.get("peak_precision") or 0.05),
                   target_qps=float(req["target_qps"]) if req.get("target_qps_given")
                   else None, queries=queries)


@dataclass
class Served:
    """A simulated server run under construction: its groups and their raw samples (kept
    in memory to pool latencies across repeats as the measured run does)."""

    model: Any
    settings: ServeSettings
    groups: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, Any] = field(default_factory=dict)

    def serve(self, lay: Any, rate: float, repeat: int = 0, **extra: Any
              ) -> dict[str, Any]:
        """One simulated served group at ``rate`` (its record, in ``served_record``'s
        shape, added to the run)."""
        from scaler import stats
        from scaler.serving import poisson_schedule

        st = self.settings
        count = st.count(rate)
        seed = st.seed * 1000 + repeat  # the measured run's seed of this repeat
        schedule = poisson_schedule(rate, count, seed) * 1000.0
        work, extra_ms, vm = self.model.instance_arrays(lay, st.max_batch)
        allowed = st.allowed_over(count)
        bound = st.latency_bound_ms if allowed >= 0 else 0.0
        # the measured drain: max(5 s, 10 bounds, 3 x the slowest warm-up query)
        alone = float(np.max((work * float(np.max(self.model.shape_array())) + extra_ms)
                             * vm))
        drain = max(5000.0, 10.0 * bound, 3.0 * alone)
        done, served_by, q_inst, q_start, q_end, q_size, bound_failed, drain_failed = \
            run_serve(*lay.arrays(), self.model.params(), vm, work, extra_ms,
                      self.model.shape_array(), schedule, st.batch, st.max_batch,
                      st.batch_timeout_ms, bound, allowed, drain, seed)
        gid = len(self.groups)
        finished = ~np.isnan(done)
        per = []
        for i in range(lay.instances):
            mine = (served_by == i) & finished
            s = (schedule[mine] * 1e6).astype(np.int64)
            e = (done[mine] * 1e6).astype(np.int64)
            self.arrays[f"g{gid}_i{i}_start_ns"] = s
            self.arrays[f"g{gid}_i{i}_end_ns"] = e
            part = lay.partitions[i]
            entry = {"index": i, "status": "complete",
                     "partition": {"cpus": part["cpus"], "nodes": part["nodes"]},
                     "threads": part["threads"], "cores": part["cores"],
                     "requests": int(mine.sum()), "latency_ms": stats.latency_ms(s, e)}
            svc = (q_end - q_start)[q_inst == i]
            if svc.size:
                entry["service_ms"] = {"queries": int(svc.size), "mean": float(svc.mean()),
                                       "p50": float(np.percentile(svc, 50)),
                                       "p99": float(np.percentile(svc, 99))}
            per.append(entry)
        latency = (done - schedule)[finished]
        span_s = float(done[finished].max() - schedule[0]) / 1000.0 if finished.any() else 0.0
        achieved = float(finished.sum()) / span_s if span_s > 0 else 0.0
        summary = stats.latency_summary(latency)
        invalid = []
        if drain_failed:
            invalid.append(f"{int((~finished).sum())} requests never served: the backlog did "
                           "not drain (the rate is beyond what the layout serves)")
        model = self.model
        record = {
            "id": gid, "placement": lay.placement, "target": "simulated",
            "emulated": False, "simulated": True, "engine": model.engine,
            "precision": model.precision, "model": model.model, "batch": st.max_batch,
            "instances": lay.instances, "cores": lay.n_cores,
            "cpus": int(lay.cpu_core.size), "oversubscribed": lay.oversubscribed,
            "oversubscription": lay.oversubscription,
            "plan_warnings": list(lay.warnings), "status": "complete", "errors": [],
            "per_instance": per, "target_qps": float(rate),
            "policy": {"batch": st.batch, "max_batch": st.max_batch,
                       "batch_timeout_ms": st.batch_timeout_ms},
            "throughput_ips": achieved, "achieved_qps": achieved,
            "queries": int(finished.sum()),
            "requests": {"scheduled": count, "completed": int(finished.sum())},
            "latency_ms": summary,
            "generator": {"simulated": "requests issued at their scheduled times",
                          "issued": count, "scheduled": count, "kept_up": True},
            "early_stopping_p99_ms": (summary.get("early_stopping") or {}).get("p99"),
            "bound_failed": bool(bound_failed), "drain_timed_out": bool(drain_failed),
            "valid": not invalid, "invalid_reasons": invalid,
            "warnings": stats.sample_warnings(int(finished.sum())), "seed": seed,
            "series": lay.placement, "repeat": repeat,
        }
        if bound > 0:
            record["latency_bound_ms"] = st.latency_bound_ms
        label = f"{lay.placement} x{lay.instances} at {rate:g} qps (simulated)"
        if st.repeat > 1:
            label += f" (repeat {repeat + 1}/{st.repeat})"
        record.update(label=label, **extra)
        self.groups.append(record)
        return record

    def point(self, record: dict[str, Any]) -> dict[str, Any]:
        """The point of ``record`` over every repeat so far (latency pooled)."""
        from scaler import points

        key = points.point_key(record)
        return points.point_of([g for g in self.groups if points.point_key(g) == key],
                               self.arrays)

    def probe(self, layout: Any, rate: float) -> bool:
        """``scenarios.server.probe`` on the model: every repeat valid and within the
        bound's allowance, and the pooled conservative latency meets the bound."""
        return self.probe_latency(layout, rate)[0]

    def probe_latency(self, layout: Any, rate: float) -> tuple[bool, float | None]:
        """``probe`` and the latency it decided on (the conservative estimate at the
        statistic; of a probe that failed early, the plain figure of what it served)."""
        from scaler import points

        record = None
        for r in range(self.settings.repeat):
            record = self.serve(layout, rate, r, probe=True,
                                layout=f"{layout.placement} x{layout.instances}")
            if record["status"] != "complete" or record.get("bound_failed") or not \
                    record.get("valid"):
                return False, (record.get("latency_ms") or {}).get(self.settings.stat)
        assert record is not None
        value = points.decision_latency(self.point(record)["latency_ms"], self.settings.stat)
        return value is not None and value <= self.settings.latency_bound_ms, value

    def capacity(self, layout: Any, queries: int = 50_000) -> float:
        """Requests/s the layout serves back to back (the simulated closed loop at the
        engine's batch), recorded as the search's calibration like the measured one."""
        from scaler.simulate.sweep import simulate_closed

        g = simulate_closed(self.model, layout, self.settings.max_batch, queries,
                            self.settings.seed)
        g.update(id=len(self.groups), calibration=True, series=f"{layout.placement} capacity",
                 label=f"{layout.placement} x{layout.instances} closed-loop capacity "
                 "(calibrates the search) (simulated)")
        self.groups.append(g)
        return float(g["throughput_ips"])

    def find_peak(self, layout: Any) -> dict[str, Any]:
        """The measured search (``server.PeakSearch``, from the closed-loop capacity: the
        simulated harness carries any rate) on the model: the highest passing rate, the
        lowest failing one above it, every probe as (rate, passed), and, when none passed,
        the lowest rate tried and its latency."""
        from scaler.scenarios.server import PeakSearch, floor_qps

        start = self.settings.target_qps
        if start is None:
            start = self.capacity(layout)
        search = PeakSearch(start, self.settings.peak_precision,
                            floor_qps(self.settings.latency_bound_ms))
        while (rate := search.next()) is not None:
            search.record(*self.probe_latency(layout, rate))
        found = search.answer()
        found["probes"] = [(p["rate_qps"], p["passed"]) for p in search.probes]
        found["start_qps"] = start
        return found

    def curve(self, layout: Any, around: float,
              fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 1.1, 1.25)
              ) -> None:
        """The hockey stick: served groups (one repeat each) at fractions of a rate."""
        for f in fractions:
            self.serve(layout, round(around * f, 3))

    def points(self) -> list[dict[str, Any]]:
        from scaler import points

        return points.aggregate(self.groups, self.arrays)


def server_groups(model: Any, topo: Any, placements: tuple[str, ...],
                  instances: tuple[int, ...], settings: ServeSettings, smt: bool = False,
                  find_peak: bool = True) -> tuple[Served, dict[str, dict[str, Any]]]:
    """A simulated server run: per placement and instance count, the peak search and the
    hockey stick around the peak (or, without ``find_peak``, every repeat at the target
    rate). Returns the run and the searches by layout."""
    from scaler.simulate.layout import plan_layout

    run = Served(model, settings)
    searches: dict[str, dict[str, Any]] = {}
    for placement in placements:
        for n in instances:
            layout = plan_layout(topo, placement, n, smt=smt)
            if not find_peak:
                for r in range(settings.repeat):
                    run.serve(layout, float(settings.target_qps or 10.0), r)
                continue
            found = run.find_peak(layout)
            searches[f"{placement} x{n}"] = found
            run.curve(layout, found["peak_qps"] or found["start_qps"])
    return run, searches


def run_document(run: Served, topo: Any, machine_source: str, requested: dict[str, Any]
                 ) -> dict[str, Any]:
    """The simulated server run in the result schema, with its points (latency pooled over
    repeats, as the measured run saves them)."""
    from scaler.simulate.sweep import run_document as sweep_document

    doc = sweep_document("server", run.model, topo, machine_source, requested, run.groups)
    doc["points"] = run.points()
    return doc


def check_settings(settings: ServeSettings) -> None:
    """One-line errors for settings a server run would refuse."""
    from scaler.errors import UsageError

    if settings.stat not in ("p50", "p90", "p99", "mean"):
        raise UsageError(f"--stat {settings.stat} is not one a server run decides on: "
                         "choose from p99, p90, p50, mean")
    if settings.max_batch < settings.batch:
        raise UsageError(f"--max-batch {settings.max_batch} is less than --batch "
                         f"{settings.batch}")
    if settings.batch_timeout_ms < 0 or not math.isfinite(settings.batch_timeout_ms):
        raise UsageError("--batch-timeout-ms must be a finite number >= 0")
    if settings.target_qps is not None and not (settings.target_qps > 0
                                                and math.isfinite(settings.target_qps)):
        raise UsageError("--target-qps must be a positive number")
    if not settings.peak_precision > 0:
        raise UsageError("--peak-precision must be positive")
    if settings.repeat < 1:
        raise UsageError("--repeat must be at least 1")


def no_server_runs(calibration: list[Any]) -> None:
    from scaler.errors import UsageError

    if any(r.scenario == "server" for r in calibration):
        raise UsageError("a server run cannot calibrate the model (its rate is the offered "
                         "load, not the capacity): calibrate on scaling or latency runs")
