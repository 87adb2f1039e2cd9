"""``scaler capacity`` on real runs: a folder mixing a null-engine run, a measured scaling run
(tiny model, with an oversubscribed count on this 2-core machine), a run too short for a
p99, a smoke run, a server peak search and a simulated 56-core machine, all made by the
real commands with windows of about a second. stdout and stderr are read apart."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.scaler.helpers import scaler_cmd
from tests.suites import NULL_ENV

# the runs are measured once, first in the serial group (test_the_runs_are_measured); the
# tests that only read them run beside the group (tests/conftest.py)

TINY = ("--engine", "tflite", "--model", "tiny", "--warmup", "0.2")


def made(*argv: str, timeout: float = 240, env: dict[str, str] | None = None) -> str:
    r = scaler_cmd(*argv, "--json", timeout=timeout, env=env or {})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["run"]


@pytest.fixture(scope="module")
def folder(artifacts):
    """One folder of real runs, and the path of each (read only: a test that changes a run
    copies it first)."""
    return artifacts.get("capacity_runs", measure)


@pytest.mark.serial
@pytest.mark.builds
def test_the_runs_are_measured(folder):
    assert {"mix", "null", "scaling", "smoke", "server", "simulated", "short"} <= set(folder)


def measure(base):
    mix = base / "mix"
    out = ("--out", str(mix))
    runs = {
        "null": made("scaling", "--engine", "null", "--instances", "1-2", "--placement",
                     "pinned", "--min-duration", "0.3", "--min-queries", "50", "--warmup",
                     "0.1", *out, env=NULL_ENV),  # 0.5 ms queries: a few hundred samples
        # 1-3 pinned on 2 cores: N=3 is oversubscribed; 800 queries let p99 be decided
        "scaling": made("scaling", *TINY, "--instances", "1-3", "--placement", "pinned",
                        "--min-duration", "0.5", "--min-queries", "800", *out),
        "smoke": made("scaling", *TINY, "--instances", "1", "--placement", "pinned",
                      "--min-duration", "0.5", "--min-queries", "10", *out),
        "server": made("server", *TINY, "--find-peak", "--instances", "1", "--placement",
                       "pinned", "--latency-bound-ms", "50", "--min-duration", "0.5",
                       "--min-queries", "700", "--peak-precision", "0.2", *out),
    }
    runs["simulated"] = made("simulate", runs["scaling"], "--machine", "2s28c2t",
                             "--instances", "1,2,28,56", "--placement", "pinned",
                             "--queries", "5000", *out, timeout=120)
    # too few queries for the conservative p99 (662): kept outside the mixed folder. The
    # stop rule ends a window of one instance at exactly --min-queries, on any CPU
    runs["short"] = made("scaling", *TINY, "--instances", "1", "--placement", "pinned",
                         "--min-duration", "0", "--min-queries", "95", "--out",
                         str(base / "short"))
    return {"mix": str(mix), **runs}


def capacity(*argv: str):
    return scaler_cmd("capacity", *argv, timeout=120)


def test_mixed_folder_one_answer_per_cohort_null_and_smoke_left_out(folder):
    r = capacity(folder["mix"], "--target-ips", "5000", "--latency-bound-ms", "50")
    assert r.returncode == 0, r.stderr
    out, err = r.stdout, r.stderr
    # results on stdout, notes on stderr
    assert out.startswith("capacity for 5000 images/s with p99 <= 50 ms, keeping 20% headroom")
    assert "scaler: note" not in out
    assert f"left out {folder['null']}" in err and "null engine" in err
    assert f"left out {folder['smoke']}" in err and "smoke run" in err
    assert folder["null"] not in out and folder["smoke"] not in out
    assert "2 groups of runs measured different things" in out
    # the table shows the machine of every row: this host's cores, and the simulated one
    header = next(line for line in out.splitlines() if line.strip().startswith("layout"))
    assert "machine" in header
    assert "2s28c2t (simulated)" in out and "1s2c1t" in out

    r = capacity(folder["mix"], "--target-ips", "5000", "--latency-bound-ms", "50", "--json")
    answer = json.loads(r.stdout)
    assert {x["run"] for x in answer["left_out"]} == {folder["null"], folder["smoke"]}
    cohorts = {c["simulated"]: c for c in answer["cohorts"]}
    assert set(cohorts) == {True, False} and answer["best"] is None
    for c in answer["cohorts"]:
        assert {r["simulated"] for r in c["candidates"]} == {c["simulated"]}
        assert len({r["machine"] for r in c["candidates"]}) == 1
        assert all(r["engine"] == "tflite" for r in c["candidates"])


def test_server_peaks_are_used_and_named(folder):
    """With a server peak search in the cohort, the recommendation is a server figure and the
    closed-loop rows are for reference only (issue 18)."""
    r = capacity(folder["mix"], "--target-ips", "5000", "--latency-bound-ms", "50", "--json")
    measured = next(c for c in json.loads(r.stdout)["cohorts"] if not c["simulated"])
    rows = measured["candidates"]
    server = [x for x in rows if x["kind"] == "server peak"]
    assert len(server) == 1 and server[0]["run"] == folder["server"]
    assert all(x["verdict"] == "reference only" for x in rows if x["kind"] == "closed loop")
    if measured["recommendation"] is not None:
        assert measured["recommendation"]["kind"] == "server peak"
    r = capacity(folder["mix"], "--target-ips", "5000", "--latency-bound-ms", "50")
    assert "server peak" in r.stdout and "closed loop" in r.stdout


def test_closed_loop_alone_says_it_is_optimistic_and_keeps_oversubscribed_out(folder):
    r = capacity(folder["scaling"], "--target-ips", "500", "--latency-bound-ms", "1000",
                 "--json")
    assert r.returncode == 0, r.stderr
    (c,) = json.loads(r.stdout)["cohorts"]
    best = c["recommendation"]
    assert best["kind"] == "closed loop" and not best["oversubscribed"]
    assert any("no queueing" in n for n in c["notes"])
    over = [x for x in c["candidates"] if x["oversubscribed"]]
    assert [x["instances"] for x in over] == [3]
    assert over[0]["verdict"] in ("oversubscribed", "misses the bound", "cannot decide")
    text = capacity(folder["scaling"], "--target-ips", "500", "--latency-bound-ms", "1000")
    assert "not oversubscribed" in text.stdout  # the recommendation states it

    r = capacity(folder["scaling"], "--target-ips", "500", "--latency-bound-ms", "1000",
                 "--allow-oversubscribed", "--json")
    (c,) = json.loads(r.stdout)["cohorts"]
    over = next(x for x in c["candidates"] if x["oversubscribed"])
    assert over["verdict"] != "oversubscribed"
    if c["recommendation"]["oversubscribed"]:
        text = capacity(folder["scaling"], "--target-ips", "500", "--latency-bound-ms", "1000",
                        "--allow-oversubscribed")
        assert "OVERSUBSCRIBED" in text.stdout


def test_headroom_is_part_of_the_answer(folder):
    def best(headroom: str) -> dict:
        r = capacity(folder["scaling"], "--target-ips", "50000", "--latency-bound-ms", "1000",
                     "--headroom", headroom, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["cohorts"][0]["recommendation"]

    for share, text in ((0.0, "0%"), (0.5, "50%")):
        b = best(text)
        assert b["servers"] * b["planning_ips"] * (1 - share) >= 50000
        assert (b["servers"] - 1) * b["planning_ips"] * (1 - share) < 50000
        assert b["headroom"] >= share and b["utilisation"] == pytest.approx(
            50000 / (b["servers"] * b["planning_ips"]))
    r = capacity(folder["scaling"], "--target-ips", "50000", "--latency-bound-ms", "1000")
    assert "servers needed:" in r.stdout and "headroom" in r.stdout


def test_too_few_queries_cannot_decide(folder):
    r = capacity(folder["short"], "--target-ips", "100", "--latency-bound-ms", "1000")
    assert r.returncode == 1, r.stdout
    found = re.search(r"cannot decide: .*p99 from (\d+) queries: the conservative estimate "
                      r"needs 662", r.stdout)
    assert found and int(found.group(1)) == 95, r.stdout
    assert r.stderr.startswith("scaler: error:") and r.stderr.count("\n") == 1
    assert "cannot decide" in r.stderr


@pytest.mark.parametrize("which,argv,needle", [
    ("null", (), "null engine"),
    ("smoke", (), "smoke run"),
    ("scaling", ("--headroom", "20"), "--headroom"),
    ("scaling", ("--headroom", "100%"), "--headroom"),
    ("scaling", ("--stat", "p42"), "--stat"),
    ("scaling", ("--plan-threading", "fast"), "--plan-threading fast"),
    ("scaling", ("--plan-threading", "tuned"), "always planned on"),
])
def test_bad_input_is_one_line_exit_2(folder, which, argv, needle):
    r = capacity(folder[which], "--target-ips", "100", "--latency-bound-ms", "100", *argv)
    assert r.returncode == 2, r.stdout
    assert r.stdout == ""
    assert r.stderr.startswith("scaler: error:") and needle in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_an_emulated_run_is_left_out(folder, tmp_path):
    """A copy of a real run with ``emulated`` set (booting a TCG VM takes minutes): proves
    only that the flag keeps a run out, with the reason."""
    copy = tmp_path / "emulated"
    shutil.copytree(folder["scaling"], copy)
    doc = json.loads((copy / "run.json").read_text())
    doc["emulated"] = True
    (copy / "run.json").write_text(json.dumps(doc))
    r = capacity(str(copy), folder["scaling"], "--target-ips", "100", "--latency-bound-ms",
                 "1000")
    assert r.returncode == 0, r.stderr
    assert f"left out {copy}" in r.stderr and "emulated" in r.stderr
