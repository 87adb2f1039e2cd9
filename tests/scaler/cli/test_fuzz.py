"""A property-based fuzz of every command's options and input files.

Every case must end in exit code 0 or 2 (1 and 75 where a command documents them) with a
one-line ``scaler: error:`` message, never a traceback, and leave no process behind. Cases
run through the CLI's ``main()`` in this process (fast: no interpreter start), and a sample
through real ``scaler`` processes.

Run commands would start measuring when every option is valid, so each of their cases also
names a hosts file that is refused at the very end of validation (after engines,
placements and their preflight checks): a case whose options all pass ends with that
refusal (exit 2), one with a bad option ends earlier (exit 2); no worker ever starts.

The examples are derandomized (the same cases every run, so ``make test`` cannot fail by
chance); ``SCALER_FUZZ_EXAMPLES=N`` asks for more, and ``SCALER_FUZZ_RANDOM=1`` for new
ones, to search deeper by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.cli import main
from tests.scaler.helpers import ROOT, processes, scaler_cmd

# every case is refused before it measures (the hosts file last) or only reads runs: beside
# the other tests, not in the serial group (a case that took the lock would fail the test)

EXAMPLES = int(os.environ.get("SCALER_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=not os.environ.get("SCALER_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None)
REFERENCE = ROOT / "results" / "reference"


# -- running a case ----------------------------------------------------------------------------

def children() -> set[int]:
    """Live descendants of this process."""
    procs = processes()
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def run_main(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """The CLI in this process, in ``cwd`` (relative paths such as ``--out .`` land there,
    never in the checkout); an exception escaping ``main`` fails the test as it is."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def check_outcome(argv: list[str], code: int, err: str, allowed: tuple[int, ...] = (0, 2)
                  ) -> None:
    assert "Traceback" not in err, f"{argv}: traceback\n{err}"
    assert code in allowed, f"{argv}: exit {code}\n{err[-2000:]}"
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("scaler: error:")]
        assert len(errors) == 1, f"{argv}: not one error line\n{err[-2000:]}"


def check_case(argv: list[str], cwd: Path, allowed: tuple[int, ...] = (0, 2)) -> int:
    before = children()
    code, _, err = run_main(argv, cwd)
    check_outcome(argv, code, err, allowed)
    left = children() - before
    assert not left, f"{argv}: processes left behind: {sorted(left)}"
    return code


# -- values --------------------------------------------------------------------------------------

def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["nan", "-nan", "inf", "-inf", "1e308", "1e309", "-1", "0", "-0",
                         "0.5", "1", "3", "1e-320", "abc", "", " 2", "1,5", "0x10", "٣"]),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**30), 10**30).map(str))


def integers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["0", "-1", "1", "2", "1.5", "", "x", "1e3", "99999999999999999999",
                         "-99999999999999999999", " 3", "٣"]),
        st.integers(-(10**20), 10**20).map(str))


def instance_lists() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["1", "1-8", "8-1", "0", "1,2,4", "1--2", "-1", "1-", "", ",",
                         "1-99999999999", "1,,2", "a-b", "3-3", "1-4097", "4096", " 2 , 3 ",
                         "1-2-3", "１"]),
        st.text(alphabet="0123456789-, ", max_size=12))


def sizes() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["2G", "1536M", "1.5GiB", "64M", "128", "0", "-1G", "1e3G", "nan",
                         "inf", "G", "2T", "2 G", "1.5.5G", "9" * 400 + "G", "99999999999M",
                         "0.0001G", "2g", "2gb"]),
        st.text(max_size=10))


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["", " ", "-", "--", "-x", "\t", "é", "a" * 300]),
                     st.text(max_size=12).filter(lambda t: "\x00" not in t))


def paths(tmp: Path) -> st.SearchStrategy[str]:
    return st.sampled_from([
        "/nonexistent/x", "/dev/null", "/dev/zero", "/etc/passwd", "/", ".", "",
        str(tmp / "file.txt"), str(tmp / "empty-dir"), str(tmp / "no-access"),
        str(tmp / "model.tflite"), str(tmp / "model.keras"), str(tmp / "dangling"),
        "-", "~", "a" * 300, "/proc/self/mem"])


def choices(*values: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), texts())


def untracked() -> set[str] | None:
    """Files of the checkout git does not know (None outside a git checkout)."""
    import subprocess

    try:
        done = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


@pytest.fixture(scope="module", autouse=True)
def checkout_untouched():
    """No case writes into the checkout (``plot`` beside a run, ``--out .``, ``--out -``)."""
    before = untracked()
    yield
    after = untracked()
    if before is not None and after is not None:
        assert not after - before, f"the fuzz wrote into the checkout: {sorted(after - before)}"


@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "file.txt").write_text("not a model\n")
    (tmp / "empty-dir").mkdir()
    (tmp / "no-access").mkdir(mode=0)
    (tmp / "model.tflite").write_bytes(b"\0" * 64)
    (tmp / "model.keras").write_text("{}")
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    (tmp / "out").mkdir()
    # refused at the end of validation: a hosts file with an option outside the allowlist
    (tmp / "refused-hosts.toml").write_text(
        "[[host]]\ndestination = 'fuzz@127.0.0.1'\nssh_options = ['ProxyCommand=false']\n")
    return tmp


# -- the run commands ----------------------------------------------------------------------------

def run_options(tmp: Path) -> dict[str, st.SearchStrategy[str] | None]:
    """Every option of the run commands (None: a flag)."""
    return {
        "--engine": choices("null", "tf", "tflite", "openvino", "auto", "NULL"),
        "--precision": choices("fp32", "bf16", "int8", "fp16"),
        "--model": st.one_of(choices("tiny", "resnet50", "mobilenetv2"), paths(tmp)),
        "--placement": choices("pinned", "shared", "vm", "shared,pinned", "pinned,pinned",
                               "shared,,vm", ",", "hosts"),
        "--instances": instance_lists(),
        "--batch": integers(),
        "--smt": None,
        "--repeat": integers(),
        "--min-duration": numbers(),
        "--min-queries": integers(),
        "--warmup": numbers(),
        "--noise-limit": numbers(),
        "--quiet-wait": numbers(),
        "--cache-dir": paths(tmp),
        "--ready-timeout": numbers(),
        "--stall-timeout": numbers(),
        "--vm-memory": sizes(),
        "--vm-kernel": paths(tmp),
        "--accel": choices("auto", "kvm", "tcg", "KVM"),
        "--vm-hugepages": None,
        "--latency-bound-ms": numbers(),
        "--stat": choices("p50", "p90", "p95", "p99", "p99.9", "mean", "P99", "p100"),
        "--max-batch": integers(),
        "--lock-wait": numbers(),
        "--no-lock": None,
        "--json": None,
        "--target-qps": numbers(), "--find-peak": None, "--batch-timeout-ms": numbers(),
        "--peak-precision": numbers(), "--seed": integers(),
        "--precisions": choices("fp32", "fp32,int8", "int8", "fp32,,bf16", "fp64"),
        "--scaling-instances": instance_lists(), "--vm": None,
        "--threading": choices("tuned", "defaults", "model-zoo", "tuned,model-zoo", "spin", ",",
                               "tuned,tuned", "Tuned"),
    }


def accepted(command: str) -> set[str]:
    """The options ``command`` takes, as the CLI itself declares them."""
    import typer

    from scaler.cli import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {name for p in click_command.params for name in p.opts if name.startswith("--")}


RUN_COMMANDS = ("latency", "throughput", "scaling", "multistream", "server", "suite")


@st.composite
def run_case(draw: Any, tmp: Path) -> list[str]:
    command = draw(st.sampled_from(RUN_COMMANDS))
    options = run_options(tmp)
    names = sorted(set(options) & accepted(command)) if draw(st.booleans()) else sorted(options)
    chosen = draw(st.lists(st.sampled_from(names), max_size=8, unique=True))
    argv = [command]
    for name in chosen:
        argv.append(name)
        if options[name] is not None:
            argv.append(draw(options[name]))
    if command == "suite" and draw(st.booleans()):
        argv.append("--quick")
    return [*argv, "--hosts", str(tmp / "refused-hosts.toml"), "--out", str(tmp / "out")]


def test_run_command_options(playground):
    @FUZZ
    @given(run_case(playground))
    def case(argv):
        code = check_case(argv, playground, allowed=(2,))  # the hosts file is refused last
        assert code == 2

    case()


# -- topology and plan ---------------------------------------------------------------------------

@st.composite
def plan_case(draw: Any, tmp: Path) -> list[str]:
    if draw(st.booleans()):
        argv = ["topology"]
    else:
        argv = ["plan", "-n", draw(integers())]
        for name, values in [("-k", integers()), ("--placement", choices("vm", "pinned",
                                                                          "shared", "nope")),
                             ("--vm-memory", sizes()), ("--accel", choices("auto", "kvm",
                                                                            "tcg")),
                             ("--vm-kernel", paths(tmp))]:
            if draw(st.booleans()):
                argv += [name, draw(values)]
        for flag in ("--smt", "--oversubscribe", "--vm-hugepages"):
            if draw(st.booleans()):
                argv.append(flag)
    if draw(st.booleans()):
        argv += ["--sysfs-root", draw(st.one_of(paths(tmp), st.just("/sys")))]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


def test_topology_and_plan_options(playground):
    @FUZZ
    @given(plan_case(playground))
    def case(argv):
        check_case(argv, playground)

    case()


# -- run.json files cut short or with wrong types ------------------------------------------------

def reference_runs() -> list[Path]:
    return sorted(p.parent for p in REFERENCE.rglob("run.json"))


def json_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON document (keys and list indices)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += json_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for k, value in enumerate(doc[:3]):
            out += json_paths(value, (*prefix, k))
    return out


def replaced(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


WRONG = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                  st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(
                      [float("nan"), float("inf"), "", "x", "NaN", [], {}, [1, "a"],
                       {"a": 1}, [[]], -1, 0, 10**400 // 10**380]),
                  st.text(max_size=8))


@st.composite
def broken_run(draw: Any, seeds: list[tuple[Path, bytes]]) -> tuple[Path, bytes]:
    """A run folder's run.json cut short, or one value replaced by one of a wrong type (or
    removed); sometimes its samples file is cut short too."""
    folder, raw = draw(st.sampled_from(seeds))
    how = draw(st.sampled_from(["cut", "value", "value", "value", "delete"]))
    if how == "cut":
        return folder, raw[:draw(st.integers(0, len(raw) - 1))]
    doc = json.loads(raw)
    candidates = [p for p in json_paths(doc) if p] if how == "delete" else json_paths(doc)
    path = draw(st.sampled_from(candidates))
    value = draw(WRONG)
    text = json.dumps(replaced(doc, path, value, how == "delete"), allow_nan=True)
    return folder, text.encode()


def read_commands(folder: str, out: str) -> list[list[str]]:
    return [["show", folder], ["show", "--json", folder], ["plot", folder, "--out", out],
            ["fit", folder], ["capacity", folder, "--target-ips", "100",
                              "--latency-bound-ms", "50"],
            ["compare", folder, folder],
            ["simulate", folder, "--instances", "1-2", "--queries", "2000", "--out", out]]


@pytest.fixture(scope="module")
def seed_runs(playground) -> list[tuple[Path, bytes]]:
    """Copies of the reference runs (``plot`` writes beside a run: never into the checkout)."""
    runs = reference_runs()
    if not runs:
        pytest.skip("no reference runs under results/reference")
    copies = []
    for k, run in enumerate(runs):
        copy = playground / "seeds" / f"{k}-{run.name}"
        shutil.copytree(run, copy)
        copies.append((copy, (copy / "run.json").read_bytes()))
    return copies


def test_read_commands_on_broken_run_files(playground, seed_runs):
    counter = iter(range(10**9))

    @FUZZ
    @given(broken_run(seed_runs), st.integers(0, 6), st.booleans())
    def case(broken, which, cut_samples):
        source, raw = broken
        folder = playground / "runs" / f"r{next(counter)}"
        shutil.copytree(source, folder)
        (folder / "run.json").write_bytes(raw)
        samples = folder / "samples.npz"
        if cut_samples and samples.exists():
            samples.write_bytes(samples.read_bytes()[:100])
        argv = read_commands(str(folder), str(playground / "plots"))[which]
        # capacity: exit 1 says no layout of the runs meets the bound (an answer)
        check_case(argv, playground, allowed=(0, 1, 2) if argv[0] == "capacity" else (0, 2))
        shutil.rmtree(folder, ignore_errors=True)

    case()


@st.composite
def read_case(draw: Any, run: str, tmp: Path) -> list[str]:
    """The options of the commands that read runs, on a good run."""
    command = draw(st.sampled_from(["show", "plot", "fit", "capacity", "compare",
                                    "simulate"]))
    argv = [command, run]
    if command == "compare":
        argv.append(draw(st.sampled_from([run, str(tmp / "empty-dir"), "/nonexistent"])))
    extra = {
        "plot": {"--format": choices("png", "svg", "pdf", "png,svg", "bmp", ",", "PNG"),
                 "--out": paths(tmp), "--allow-emulated": None},
        "capacity": {"--target-ips": numbers(), "--latency-bound-ms": numbers(),
                     "--stat": choices("p50", "p90", "p95", "p99", "p99.9", "mean", "p100")},
        "simulate": {
            "--instances": st.sampled_from(["1", "1-2", "0", "1-5000", "x"]),
            "--placement": choices("shared", "pinned", "vm", "shared,pinned"),
            "--machine": choices("2s28c2t", "1s2c1t", "0s0c0t", "999s999c999t", "2s2c2t4n",
                                 "s", "1s1c1t1n"),
            "--topology": paths(tmp), "--sysfs-root": paths(tmp),
            "--scenario": choices("scaling", "multistream"),
            "--latency-bound-ms": numbers(), "--stat": choices("p50", "p99", "p99.9", "x"),
            "--fps": numbers(), "--max-batch": st.sampled_from(["1", "8", "0", "-1",
                                                                "99999999999"]),
            "--assume": choices("smt_gain=0.2", "smt_gain=nan", "bogus=1", "t1_ms=-1",
                                "serial_fraction=inf", "=", "smt_gain"),
            "--queries": st.sampled_from(["1", "100", "2000", "0", "-5", "99999999999",
                                          "x"]),
            "--seed": integers(), "--smt": None,
            "--calibrate-on": instance_lists(),
            "--threading": choices("tuned", "model-zoo", "defaults", "warp",
                                   "tuned,model-zoo", ""),
            "--results": paths(tmp),
        },
    }.get(command, {})
    for name in draw(st.lists(st.sampled_from(sorted(extra) or ["--json"]), max_size=4,
                              unique=True)):
        argv.append(name)
        if extra.get(name) is not None:
            argv.append(draw(extra[name]))
    if command == "simulate":
        if "--queries" not in argv:
            argv += ["--queries", "2000"]
        if draw(st.booleans()):
            argv = ["simulate", "--validate", *argv[2:]] if "--calibrate-on" in argv else argv
        argv += ["--out", str(tmp / "simulated")]
    if command in ("show", "fit", "compare") and draw(st.booleans()):
        argv.append("--json")
    return argv


def test_read_command_options(playground, seed_runs):
    run = str(seed_runs[0][0])

    @FUZZ
    @given(read_case(run, playground))
    def case(argv):
        check_case(argv, playground, allowed=(0, 1, 2) if argv[0] == "capacity" else (0, 2))

    case()


# -- hosts files -----------------------------------------------------------------------------

TOML_VALUES = st.one_of(
    st.text(max_size=20).map(json.dumps), st.integers(-(2**64), 2**64).map(str),
    st.floats(allow_nan=True).map(lambda f: "nan" if math.isnan(f) else
                                  ("inf" if f == math.inf else ("-inf" if f == -math.inf
                                                                 else repr(f)))),
    st.sampled_from(["true", "[]", "[1, 2]", "['a', 1]", "{}", "{a = 1}", '"0-3"', '"x-y"',
                     "[0.5]", "[true]", '"0-99999999"', "1979-05-27", '"bench@10.0.0.5"',
                     '"-oProxyCommand=x"', "['ProxyCommand=x']", "['ConnectTimeout=5']"]))
HOST_KEYS = ["name", "destination", "python", "workdir", "cpus", "port", "identity_file",
             "ssh_options", "nmae", "Host"]


@st.composite
def hosts_file(draw: Any) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))  # not even TOML
    tables = []
    for _ in range(draw(st.integers(0, 3))):
        lines = ["[[host]]"]
        for key in draw(st.lists(st.sampled_from(HOST_KEYS), max_size=6, unique=True)):
            lines.append(f"{key} = {draw(TOML_VALUES)}")
        tables.append("\n".join(lines))
    return "\n".join(tables) + "\n"


def test_hosts_files(playground):
    """Through ``load_hosts`` (where every hosts file is read first): a Host or a one-line
    UsageError, whatever the file holds; a Host it accepts has values ssh and the remote
    shell cannot misread."""
    from scaler.errors import UsageError
    from scaler.hosts import load_hosts

    path = playground / "fuzz-hosts.toml"

    @FUZZ
    @given(hosts_file())
    def case(text):
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            hosts = load_hosts(path)
        except UsageError as exc:
            assert "\n" not in str(exc)
            return
        for host in hosts:
            assert not host.destination.startswith("-")
            assert all(c not in host.destination for c in " ;|&$`'\"\\<>(){}*?!#~%\n")
            assert all(o.split("=", 1)[0] not in ("ProxyCommand", "LocalCommand")
                       for o in host.ssh_options)

    case()


# -- a sample through real processes -------------------------------------------------------------

def test_a_sample_through_real_processes(playground, seed_runs):
    """The same properties with the interpreter starting and exiting as a user's shell sees
    it (stderr, exit status, no child left): a few cases of each kind."""
    folder = playground / "real-run"
    source, raw = seed_runs[0]
    shutil.copytree(source, folder)
    doc = json.loads(raw)
    doc["groups"] = "not a list"
    (folder / "run.json").write_text(json.dumps(doc))
    cases = [
        ["latency", "--min-duration", "nan", "--out", str(playground / "out")],
        ["scaling", "--instances", "1-99999999999", "--out", str(playground / "out")],
        ["latency", "--placement", "vm", "--vm-memory", "9" * 400 + "G", "--out",
         str(playground / "out")],
        ["plan", "-n", "2", "--placement", "vm", "--vm-memory", "nanG"],
        ["server", "--target-qps", "1e300", "--out", str(playground / "out")],
        ["server", "--seed", "-1", "--out", str(playground / "out")],
        ["show", str(folder)],
        ["fit", str(folder)],
        ["topology", "--sysfs-root", "/dev/null"],
        ["scaling", "--hosts", str(playground / "refused-hosts.toml"),
         "--out", str(playground / "out")],
    ]
    for argv in cases:
        before = children()
        r = scaler_cmd(*argv, timeout=120, cwd=playground)
        check_outcome(argv, r.returncode, r.stderr, allowed=(2,))
        assert not children() - before

