"""What the report says, section by section, checked against the run files themselves.

The suite is real (``conftest.suite``). The expected figures are read from ``suite.json`` and
``run.json`` with json, and from the ``.npz`` samples with numpy; where a check compares the
report's computation with the run's own summary of the same samples it proves consistency
of two code paths, and says so.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from scaler.report import machine, scaling
from scaler.report.inputs import read_inputs
from scaler.report.latency import point_latencies_ms
from scaler.results import load_run
from scaler.simulate.model import PARAMETERS
from tests.scaler.helpers import scaler_cmd
from tests.scaler.report.conftest import REFERENCE, layout_kind_runs

# reads the session's suite (tests/suites.py: measured first in the serial group by
# test_suite_built.py) and runs no measurement: beside the serial group


def section(html: str, sid: str) -> str:
    found = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert found, sid
    return found.group(1)


def rows(fragment: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", fragment, re.S)


def runs_of(folder: Path) -> dict[str, Path]:
    doc = json.loads((folder / "suite.json").read_text())
    return {name: Path(path) for name, path in doc["runs"].items()}


def test_the_suite_prints_the_report_path_last(suite):
    lines = suite["stdout"].strip().splitlines()
    assert lines[-1] == f"report: {suite['report']}"
    assert lines[-2].startswith("suite summary: ")
    html = suite["report"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    # self-contained: figures inline, nothing to fetch
    assert 'src="data:image/png;base64,' in html
    assert not re.search(r'(src|href)="(?!data:|#)', html)


def test_the_claims_table_shows_suite_json(suite):
    claims = json.loads((suite["folder"] / "suite.json").read_text())["claims"]
    table = section(suite["report"].read_text(), "claims")
    body = rows(table)[1:]
    assert len(body) == len(claims) == 4
    for row, c in zip(body, claims):
        assert f"<b>{c['test']}</b>" in row
        if c["measured"] is None:
            assert "not measured" in row
        elif c["unit"].startswith("%"):
            assert f"{c['measured']:+.1f}%" in row
            if c["ci95"]:
                assert f"[{c['ci95'][0]:+.1f}, {c['ci95'][1]:+.1f}]" in row
        else:
            assert f"{c['measured']:.2f}x" in row
            if c["ci95"]:
                assert f"[{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" in row
        assert c["verdict"].replace("'", "&#x27;") in row
        assert ("b-noisy" in row) == bool(c.get("noisy"))
        tuned = c.get("tuned")  # beside the study's bare metal: tuned bare metal, as measured
        if tuned and tuned.get("measured") is not None:
            assert f"over tuned bare metal: {tuned['measured']:.2f}x" in row
    scaling = next(c for c in claims if c["test"] == "scaling")
    assert scaling["against"] == "the study's bare metal (--threading model-zoo)"
    assert scaling["compared"].startswith("pinned-model-zoo over shared-model-zoo at N=2")


def shows(text: str, value: float) -> bool:
    """``text`` is ``value`` rounded to the digits it shows, whichever form the page picked
    for its size (1,234 / 963.7 / 1.234e+07): a null suite's throughput is near 1,000 on
    some machines and loads and not on others."""
    mantissa = text.replace(",", "").split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    scale = 10 ** int(text.split("e")[1]) if "e" in text else 1
    return abs(float(text.replace(",", "")) - value) <= 0.5 * 10 ** -decimals * scale * 1.0001


def test_shows_reads_each_form_the_page_writes():
    assert shows("1,234", 1234.4) and not shows("1,234", 1235.0)
    assert shows("963.7", 963.66) and not shows("963.7", 964.0)
    assert shows("1.234e+07", 12_344_000) and not shows("1.234e+07", 12_360_000)


def test_every_noisy_or_unstable_scaling_point_is_marked(suite):
    """Every scaling run's table (the sweep, and the study's run of shared and pinned under
    tuned and model-zoo, whose series are named with their style)."""
    from scaler.threadstyles import label

    folders = {path.name: name for name, path in runs_of(suite["folder"]).items()}
    table = section(suite["report"].read_text(), "scaling")
    checked = {}
    for block in table.split("<h3>")[1:]:
        folder = re.search(r"<small>\((.*?)\)</small>", block).group(1)
        name = folders[folder]
        doc = json.loads((runs_of(suite["folder"])[name] / "run.json").read_text())
        points = {(label(p), p["instances"]): p for p in doc["points"]}
        seen = 0
        for row in rows(block):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            if len(cells) != 8:
                continue  # the comparisons table
            p = points[(cells[0].split(" ")[0], int(cells[1]))]
            assert ("b-noisy" in cells[7]) == bool(p["noisy"])
            assert ("b-unstable" in cells[7]) == bool(p["unstable"])
            assert shows(cells[2].split(" ")[0], p["throughput_ips"]), (cells[2], p)
            seen += 1
        assert seen == len(points)
        checked[name] = seen
    # the sweep: shared and pinned at N=1,2; the study's: both styles of each at N=2
    assert checked == {"scaling": 4, "scaling-model-zoo": 4}


def test_latency_curves_hold_every_recorded_query(suite):
    """Consistency: the report's samples reader against the run's own pooled summary
    (``scaler.points``), both over the same ``.npz`` files."""
    run = load_run(runs_of(suite["folder"])["latency"])
    for p in run.doc["points"]:
        lat = point_latencies_ms(run, p)
        assert lat.size == p["latency_ms"]["samples"]
        assert np.percentile(lat, 50) == pytest.approx(p["latency_ms"]["p50"], rel=1e-9)
        assert np.percentile(lat, 99) == pytest.approx(p["latency_ms"]["p99"], rel=1e-9)
    # and against numpy alone: the queries of the point's first group
    p = run.doc["points"][0]
    with np.load(run.path / "samples" / f"g{p['groups'][0]}.npz") as data:
        alone = sum(len(data[k]) for k in data.files if k.endswith("_start_ns"))
    assert alone <= point_latencies_ms(run, p).size


def test_a_run_given_twice_is_read_once_and_named_by_the_suite(suite):
    scaling = runs_of(suite["folder"])["scaling"]
    inputs = read_inputs([suite["folder"], scaling])
    assert len(inputs.runs) == len(runs_of(suite["folder"]))
    assert sorted(inputs.experiment(r) for r in inputs.runs) == sorted(runs_of(suite["folder"]))


def test_bench_peaks_and_cpu_model_are_shown(suite, tmp_path):
    """The bench file here is written by hand with the fields ``make bench`` records (a
    real bench takes minutes): it checks that the report reads them, not the bench."""
    copy = tmp_path / "results" / suite["folder"].name
    copy.parent.mkdir()
    copy.symlink_to(suite["folder"], target_is_directory=True)
    host = json.loads((runs_of(suite["folder"])["latency"] / "run.json").read_text())["host"]
    bench = {"schema": "scaler-bench/1", "created": "2026-11-29T08:00:00+00:00", "quick": False,
             "host": {"hostname": host["hostname"], "cpu_model": "Test CPU @ 9.99GHz"},
             "sections": {"peak": {"clock_ghz": 3.7, "zmm_over_ymm": 2.0, "method": "m",
                                   "precisions": {"fp32": {
                                       "per_core_gops": 123.4, "machine_gops": 246.8,
                                       "concurrent_gops": 240.0,
                                       "instruction": "vfmadd231ps"}}}}}
    (tmp_path / "results" / "bench").mkdir()
    (tmp_path / "results" / "bench" / "bench.json").write_text(json.dumps(bench))
    html = machine.section(read_inputs([copy]))
    assert host["cpu_model"] in html  # the runs record their CPU model: it comes first
    assert "123.4 GFLOP/s" in html and "vfmadd231ps" in html


def test_emulated_series_are_drawn_apart_and_marked(suite, tmp_path):
    """An emulated run made by relabelling a copy of the real scaling run (as a VM under TCG
    records it): the report must never draw it beside real timing results."""
    real = runs_of(suite["folder"])["scaling"]
    fake = tmp_path / "scaling-emulated"
    shutil.copytree(real, fake)
    doc = json.loads((fake / "run.json").read_text())
    doc["emulated"] = True
    for item in doc["groups"] + doc["points"]:
        item["emulated"] = True
    (fake / "run.json").write_text(json.dumps(doc))
    html = scaling.section(read_inputs([real, fake]))
    assert 'alt="scaling curves"' in html and 'alt="emulated scaling curves"' in html
    assert html.count("b-emulated") >= 4


def test_the_prediction_lists_every_parameter_and_the_validation(suite, predicted):
    html = predicted.read_text()
    pred = section(html, "prediction")
    assert "<h2>Prediction on another machine: 2s28c2t</h2>" in html
    for name in PARAMETERS:
        assert f"<code>{name}</code>" in pred
    assert re.search(r"<code>core_speed</code></td><td class=\"num\">0.80</td><td>"
                     r"<span class=\"badge b-simulated\"[^>]*>given", pred)
    assert "Held-out" in pred or "no held-out validation" in pred
    assert "2 sockets, 2 NUMA nodes, 56 cores, 112 CPUs" in pred
    ns = [int(m.group(1)) for r in rows(pred) if r.count("<td") == 4
          for m in [re.match(r"<td class=\"num\">(\d+)</td>", r)] if m]
    assert ns == [1, 2, 4, 8]
    # calibrated on the suite's measured runs of the scaling run's kind only (one engine,
    # precision and model)
    used = re.search(r"<dt>calibrated on</dt><dd>(.*?)</dd>", pred).group(1).split(", ")
    expected = {str(p) for p in layout_kind_runs(suite["folder"]).values()}
    assert set(used) == expected


@pytest.mark.parametrize("args, needle", [
    (["report", "/no/such/suite"], "no such run or suite folder"),
    (["report", "EMPTY"], "neither a run folder nor a suite folder"),
    (["report", "RUN", "--machine", "2x28"], "bad --machine"),
    (["report", "RUN", "--machine", "2s28c2t", "--assume", "speed"], "bad --assume"),
    (["report", "RUN", "--machine", "2s28c2t", "--assume", "warp=2"], "unknown model "
                                                                        "parameter"),
    (["report", "RUN", "--machine", "2s28c2t", "--assume", "smt_gain=3"], "smt_gain must lie"),
    (["report", "RUN", "--bench", "/no/bench.json"], "no such bench file"),
    (["report", "RUN", "--machine", "2s28c2t", "--queries", "0"], "--queries must be"),
    (["report", "RUN", "--machine", "2s28c2t", "--machine-placement", "cloud"],
     "unknown --machine-placement"),
    (["report", "RUN", "--machine", "2s28c2t", "--cores-per-instance", "0"],
     "--cores-per-instance must be"),
])
def test_bad_input_is_one_line_exit_2(suite, args, needle, tmp_path):
    (tmp_path / "empty").mkdir()
    names = {"RUN": str(suite["folder"]), "EMPTY": str(tmp_path / "empty")}
    args = [names.get(a, a) for a in args]
    r = scaler_cmd(*args, "--out", str(tmp_path / "r.html")) if "--out" not in args \
        else scaler_cmd(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "r.html").exists()


def test_several_folders_need_out(suite):
    runs = runs_of(suite["folder"])
    r = scaler_cmd("report", str(runs["latency"]), str(runs["scaling"]))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "give --out FILE" in lines[0], r.stderr


def test_a_partial_run_is_flagged_at_the_top_with_its_reason(suite, tmp_path):
    """A run marked partial as the runner marks one (a copy of a real run, relabelled)."""
    from scaler.report import page, provenance

    copy = tmp_path / "latency-partial"
    shutil.copytree(runs_of(suite["folder"])["latency"], copy)
    doc = json.loads((copy / "run.json").read_text())
    doc.update(status="partial", partial_reasons=["worker 0 died (SIGKILL)"])
    (copy / "run.json").write_text(json.dumps(doc))
    inputs = read_inputs([copy])
    head = " ".join(page._header(inputs))
    assert "1 run(s) not complete" in head
    assert "worker 0 died (SIGKILL)" in provenance.section(inputs)


def test_an_older_suite_without_suite_json_is_read_with_its_experiments():
    """The committed reference suite: real ResNet50 runs of schema 1, no suite.json."""
    from scaler.report import claims, provenance

    inputs = read_inputs([REFERENCE])
    assert [r.scenario for r in inputs.runs] == ["latency", "throughput", "scaling",
                                                 "multistream"]
    assert "No <code>suite.json</code>" in claims.section(inputs)
    assert "tf fp32 resnet50" in provenance.section(inputs)
    html = machine.section(inputs)
    assert "No host facts recorded" in html and "avx512_bf16" in html


def test_the_command_that_made_the_runs_is_shown_once(suite):
    import shlex

    from tests.scaler.report.conftest import SUITE_ARGS

    prov = section(suite["report"].read_text(), "provenance")
    expected = shlex.join(["python", "-m", "scaler", *SUITE_ARGS, "--out",
                           str(suite["folder"].parent)])
    assert prov.count(f"<pre>{expected}</pre>") == 1
    assert "made: latency, throughput-fp32, throughput-int8, scaling, scaling-model-zoo, " \
           "multistream-int8, multistream-fp32" in prov


def test_emulated_latency_curves_get_a_figure_of_their_own(suite, tmp_path):
    """A latency run whose pinned side is relabelled emulated (as a VM under TCG records
    it): its curve leaves the real one's axes."""
    from scaler.report import latency

    copy = tmp_path / "latency-vm"
    shutil.copytree(runs_of(suite["folder"])["latency"], copy)
    doc = json.loads((copy / "run.json").read_text())
    for item in doc["groups"] + doc["points"]:
        if item["placement"] == "pinned":
            item["emulated"] = True
    (copy / "run.json").write_text(json.dumps(doc))
    html = latency.section(read_inputs([copy]))
    assert 'alt="latency distribution of latency"' in html
    assert 'alt="latency distribution of latency (emulated VMs)"' in html


def test_a_quick_suite_records_that_its_runs_are_smoke_runs(suite):
    """``capacity`` leaves smoke runs out by this flag, whatever their rules were."""
    for path in runs_of(suite["folder"]).values():
        doc = json.loads((suite["folder"] / path.name / "run.json").read_text())
        assert doc["requested"]["quick"] is True, path
