"""The slurm provider's pieces that need no cluster: masks, Slurm's verbose binding lines,
the read-back verdict, ``--fleet`` parsing, and the one-line refusals before anything runs."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.fleets import FleetChoice, parse, wanted
from scaler.fleets.slurm import expand_counts, parse_arg
from scaler.fleets.slurmsteps import bind_options, mask, mismatch, parse_bind_line, unmask
from scaler.settings import Settings
from tests.scaler.helpers import scaler_cmd


def test_masks_round_trip_and_options():
    assert mask([0]) == "0x1" and mask([1]) == "0x2" and mask([0, 1, 4]) == "0x13"
    assert unmask("0x13") == [0, 1, 4] and unmask(mask(range(70, 130))) == list(range(70, 130))
    assert bind_options([2, 3], []) == ["--cpu-bind=verbose,mask_cpu:0xc"]
    assert bind_options([2, 3], [1]) == ["--cpu-bind=verbose,mask_cpu:0xc",
                                         "--mem-bind=verbose,mask_mem:0x2"]


def test_verbose_binding_lines():
    cpu = parse_bind_line("cpu-bind=MASK - node-7, task  0  0 [28728]: mask 0x3 set")
    assert cpu == {"kind": "cpu", "style": "MASK", "node": "node-7", "task": 0, "pid": 28728,
                   "mask": "0x3", "ids": [0, 1]}
    mem = parse_bind_line("mem-bind=MASK - vm, task  0  0 [17]: mask 0x1 set")
    assert mem is not None and mem["kind"] == "mem" and mem["ids"] == [0]
    assert parse_bind_line("srun: error: Unable to satisfy cpu bind request") is None


def test_mismatch_names_both_cpu_lists():
    assert mismatch([0, 1], [1, 0], [0, 1]) is None
    assert mismatch([1], None, [1]) is None
    said = mismatch([1], [0], [0])
    assert said is not None and "CPUs 0" in said and "CPUs 1" in said and "Slurm" in said
    said = mismatch([1], [1], [0, 1])
    assert said is not None and "worker reads back CPUs 0-1" in said and "CPUs 1" in said


def test_counts_and_arguments():
    assert expand_counts("2(x3),4") == [2, 2, 2, 4] and expand_counts("8") == [8]
    assert parse_arg(FleetChoice("slurm")) == (None, 1)
    assert parse_arg(FleetChoice("slurm", "batch:3")) == ("batch", 3)
    for bad in ("a b", "p:0", "p:x", "-p"):
        with pytest.raises(UsageError):
            parse_arg(FleetChoice("slurm", bad))


def test_wanted_routes_hosts_and_fleet():
    assert wanted(Settings()) is None
    assert wanted(Settings(hosts_file="h.toml")) == FleetChoice("ssh", "h.toml")
    assert wanted(Settings(fleet="slurm:p")) == FleetChoice("slurm", "p")
    with pytest.raises(UsageError, match="unknown --fleet 'k8s'"):
        parse("k8s:x")


def test_cli_refusals_are_one_line(tmp_path):
    cases = [
        (["--fleet", "k8s"], "unknown --fleet 'k8s'"),
        (["--fleet", "slurm", "--hosts", "x.toml"], "not both"),
        (["--fleet", "ssh"], "--fleet ssh:FILE"),
        # the long form reads the same file the same way as --hosts
        (["--fleet", f"ssh:{tmp_path}/missing.toml"], "missing.toml"),
        (["--fleet", "slurm:a b"], "not a partition name"),
    ]
    for extra, said in cases:
        done = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--out",
                          str(tmp_path), *extra, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (extra, done.stderr)
        assert len(lines) == 1 and said in lines[0] and lines[0].startswith("scaler: error:")


def test_no_slurm_commands_on_path(tmp_path):
    done = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--fleet", "slurm",
                      "--out", str(tmp_path), env={"PATH": str(tmp_path)}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "scaler: error: --fleet slurm: no Slurm commands on PATH (salloc, srun, sinfo, squeue, "
        "scancel, scontrol not found): run where Slurm's client tools are installed")
    assert not any(tmp_path.iterdir())  # no run folder: refused before anything started
