"""ISA caps (``--isa``) and the read-back of what the kernels ran on.

The cap rules are checked on hand-made CPU flag lists (a Skylake-SP, a Cascade Lake, a
Sapphire Rapids), whose right answers are known from Intel's ISA tables, not from the code.
The read-back is checked on real OpenVINO workers: a cap must change the kernels' names
(judged on names, never on a speed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from affinity import read_topology
from scaler.engines import EngineError, EngineSpec, check_spec, isa_caps
from scaler.engines.kernels import amx_permission, kernel_units, summary, unit_of
from tests.scaler.helpers import scaler_cmd

AVX512 = ("avx2", "avx512f")  # as the topology records flags (affinity.ISA_FLAGS)
SKYLAKE = AVX512
CASCADELAKE = (*AVX512, "avx512_vnni")
SAPPHIRE = (*CASCADELAKE, "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
ISA = read_topology().isa


def test_aliases_map_to_onednn_names_and_unknown_caps_are_refused():
    assert isa_caps.resolve("cascadelake") == "avx512_core_vnni"
    assert isa_caps.resolve("Skylake") == "avx512_core"
    assert isa_caps.resolve("AVX512_CORE_AMX") == "avx512_core_amx"
    assert isa_caps.resolve("native") == "native"
    assert isa_caps.alias_note("cooperlake") == "--isa cooperlake = avx512_core_bf16"
    with pytest.raises(EngineError, match="unknown --isa 'avx1024'"):
        isa_caps.resolve("avx1024")


@pytest.mark.parametrize(("cpu", "cap", "missing"), [
    (SKYLAKE, "avx512_core", None),
    (SKYLAKE, "cascadelake", "avx512_vnni"),
    (CASCADELAKE, "avx512_core_vnni", None),
    (CASCADELAKE, "avx512_core_amx", "avx512_bf16"),
    (SAPPHIRE, "avx512_core_amx", None),
    (SAPPHIRE, "avx2_vnni", None),
    (CASCADELAKE, "avx2_vnni", "avx_vnni"),  # AVX2 VNNI is not below AVX-512 VNNI
    ((), "avx2", "avx2"),
])
def test_a_cap_above_the_cpu_is_refused_with_what_it_lacks(cpu, cap, missing):
    name = isa_caps.resolve(cap)
    if missing is None:
        isa_caps.check_cpu(name, cpu)
        return
    with pytest.raises(EngineError, match=f"above this CPU: it lacks .*{missing}"):
        isa_caps.check_cpu(name, cpu)


def test_highest_cap_per_generation():
    assert isa_caps.highest(SKYLAKE) == "avx512_core"
    assert isa_caps.highest(CASCADELAKE) == "avx512_core_vnni"
    assert isa_caps.highest(SAPPHIRE) == "avx512_core_amx"
    assert isa_caps.env("avx512_core_vnni") == {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI",
                                                "DNNL_MAX_CPU_ISA": "AVX512_CORE_VNNI"}
    assert isa_caps.env("native") == {}


def test_engines_without_a_cap_switch_refuse_any_cap_but_native():
    with pytest.raises(EngineError, match="engine tflite cannot cap .*XNNPACK"):
        check_spec(EngineSpec(engine="tflite", precision="int8", isa="avx2"), SAPPHIRE)
    check_spec(EngineSpec(engine="tflite", precision="int8", isa="native"), SAPPHIRE)
    assert check_spec(EngineSpec(engine="openvino", isa="skylake"), SKYLAKE).isa == \
        "avx512_core"
    with pytest.raises(EngineError, match="lacks avx512_vnni"):
        check_spec(EngineSpec(engine="openvino", precision="int8", isa="cascadelake"), SKYLAKE)


@pytest.mark.parametrize(("name", "unit"), [
    ("brgconv_avx512_amx_1x1_I8", "amx"), ("brgconv_avx512_1x1_I8", "avx512"),
    ("brgemm_avx512_bf16", "avx512"), ("jit_avx2_I8", "avx2"), ("jit_gemm_I8", "other"),
    ("jit_sse42_FP32", "sse41"), ("ref_any_FP32", "ref"), ("jit_avx_FP32", "avx")])
def test_kernel_names_tell_their_unit(name, unit):
    assert unit_of(name) == unit


def test_kernel_summary_counts_nodes_per_unit():
    read = kernel_units(["brgconv_avx512_amx_1x1_I8"] * 53 + ["brgconv_avx512_I8"] * 4)
    assert read["units"] == {"amx": 53, "avx512": 4} and read["nodes"] == 57
    assert summary({**read, "amx_permission": True}) == (
        "amx: 53 of 57 compute nodes; avx512: 4 of 57 compute nodes (AMX permission: yes)")


def test_amx_permission_is_read_in_a_fresh_process():
    """A process that never asked for AMX tile data holds no permission (on any CPU)."""
    code = ("import json; from scaler.engines.kernels import amx_permission; "
            "print(json.dumps(amx_permission()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) is False
    assert amx_permission() in (True, False)


@pytest.mark.skipif("avx2" not in ISA, reason="the cap test needs a CPU with AVX2")
def test_a_cap_changes_the_kernels_openvino_runs(openvino_cache):
    """The same cached int8 IR, native and capped at AVX2: the capped kernels read back as
    AVX2 (or below), and never above; native runs the CPU's best unit."""
    folder, _ = openvino_cache
    code = textwrap.dedent(f"""
        import json, os, sys
        from scaler.engines import EngineSpec, load_engine, isa_caps
        os.environ.update(isa_caps.env(sys.argv[1]))
        e = load_engine(EngineSpec(engine="openvino", model="tiny", precision="int8",
                                   cache_dir={folder!r}, isa=sys.argv[1]))
        e.infer(e.make_input())
        print(json.dumps(e.info["kernel_isa"]["units"]))
    """)

    def units(cap: str) -> dict[str, int]:
        out = subprocess.run([sys.executable, "-c", code, cap], capture_output=True,
                             text=True, timeout=180, check=True).stdout
        return json.loads(out.splitlines()[-1])

    capped, native = units("avx2"), units("native")
    assert set(capped) <= {"avx2", "avx", "sse41", "ref", "other"} and "avx2" in capped
    if "avx512f" in ISA:
        assert set(native) & {"avx512", "amx"}, native


@pytest.mark.serial  # measures (takes the lock): one at a time
def test_scaling_sweeps_caps_side_by_side_and_records_them(tmp_path):
    """Two caps in one run (null engine: caps are recorded, nothing runs under them): each
    group records its cap and its workers' read-back; the series are told apart."""
    out = tmp_path / "out"
    r = scaler_cmd("scaling", "--engine", "null", "--instances", "1", "--placement",
                   "shared,pinned", "--isa", "native,avx2", "--min-duration", "0.2",
                   "--min-queries", "5", "--warmup", "0.1", "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(next(out.glob("scaling-*/run.json")).read_text())
    assert [(g["placement"], g["isa_cap"]) for g in doc["groups"]] == [
        ("shared", "native"), ("shared", "avx2"), ("pinned", "native"), ("pinned", "avx2")]
    assert doc["requested"]["isa"] == ["native", "avx2"]
    assert len({(p["series"], p["isa_cap"]) for p in doc["points"]}) == 4
    summary = json.loads(r.stdout)
    assert {s["isa_cap"] for s in summary["series"]} == {"native", "avx2"}


def test_cli_refuses_a_cap_the_engine_or_cpu_cannot_run(tmp_path):
    out = tmp_path / "out"
    r = scaler_cmd("latency", "--engine", "tflite", "--precision", "int8", "--model", "tiny",
                   "--isa", "avx2", "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "cannot cap" in r.stderr and not list(out.glob("*/run.json"))
    r = scaler_cmd("latency", "--engine", "null", "--isa", "pentium4", "--out", str(out))
    assert r.returncode == 2 and "unknown --isa 'pentium4'" in r.stderr
    if "amx_tile" not in ISA:
        r = scaler_cmd("latency", "--engine", "openvino", "--model", "tiny", "--isa",
                       "sapphirerapids", "--out", str(out))
        assert r.returncode == 2 and "above this CPU" in r.stderr
        assert not list(out.glob("*/run.json"))


def test_onednn_verbose_lines_are_parsed():
    """Lines as oneDNN 3.7 inside TensorFlow 2.21 printed them here (copied by hand)."""
    from scaler.engines.onednn_probe import parse

    lines = [
        "onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)",
        "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with float16, Intel DL Boost and "
        "bfloat16 support",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,"
        "forward_training,src:f32::blocked:acdb::f0,attr-scratchpad:user,,0.0458984",
        "onednn_verbose,v1,primitive,exec,cpu,inner_product,x64:gemm:jit,forward_training,"
        "src:f32,,0.01",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,0.01",
        "2026-12-07 13:30:00 I tensorflow: not a verbose line"]
    read = parse(lines)
    assert read["onednn_isa"] == "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support"
    assert read["kernels"] == {"brg_conv_fwd:avx512_core": 1, "x64:gemm:jit": 1}
    assert read["units"] == {"avx512": 1, "other": 1}


@pytest.mark.skipif("avx512f" not in ISA, reason="needs an AVX-512 CPU to see a cap lower it")
def test_a_cap_changes_what_tensorflow_onednn_reports(tmp_path):
    """The probe of the tiny model, native and capped at AVX2: oneDNN says which ISA it
    dispatches to, and the AVX-512 kernels are gone under the cap (names, not speed). The
    process asking for both answers never imports TensorFlow (only the probes do)."""
    code = textwrap.dedent(f"""
        import json, sys
        from scaler.engines import EngineSpec
        from scaler.engines.onednn_probe import read_back
        print(json.dumps([read_back(EngineSpec(engine="tf", model="tiny", isa=cap,
                                               cache_dir={str(tmp_path)!r}))
                          for cap in ("native", "avx2")] + ["tensorflow" in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    native, capped, imported = json.loads(out.splitlines()[-1])
    assert "AVX-512" in native["onednn_isa"] and "avx512" in native["units"]
    assert capped["onednn_isa"] == "Intel AVX2" and "avx512" not in capped["units"]
    assert imported is False


def test_a_read_back_that_contradicts_its_cap_is_flagged():
    from scaler.engines.kernels import cap_warnings

    def inst(**units):
        return {"engine": {"kernel_isa": {"units": units}}}

    assert cap_warnings("avx2", [inst(avx2=50, other=4)], CASCADELAKE, "int8") == []
    assert cap_warnings("avx2", [inst(avx512=54)], CASCADELAKE, "int8") == [
        "kernels above the --isa avx2 cap read back: avx512"]
    assert cap_warnings("native", [inst(avx512=54)], SAPPHIRE, "int8") == [
        "int8 on a CPU with AMX, AMX allowed, but no kernel ran on AMX (avx512)"]
    assert cap_warnings("native", [inst(amx=53, avx512=4)], SAPPHIRE, "int8") == []
    assert cap_warnings("avx512_core_vnni", [inst(avx512=54)], SAPPHIRE, "int8") == []
    assert cap_warnings("native", [inst(avx512=54)], SAPPHIRE, "fp32") == []
    assert cap_warnings("avx2", [{"engine": {}}], CASCADELAKE, "int8") == []  # names none
