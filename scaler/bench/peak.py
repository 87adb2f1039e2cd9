"""Peak throughput of one core, measured with numba kernels that are nothing but the
arithmetic instruction: fp32 FMA, and where the CPU has them bf16 and int8 dot products.

Why not numpy: its OpenBLAS sgemm reaches only about 104 GFLOP/s per core here, far below what
the core can do, so it would flatter every efficiency figure computed against it. Each kernel
is LLVM IR emitted through a numba ``@intrinsic``: ``CHAINS`` independent 512-bit (zmm)
accumulators, each updated by one instruction per loop step (``llvm.fma.v16f32``,
``vdpbf16ps``, ``vpdpbusd``). Zen 5 has two 512-bit pipes for these with a 4-6 cycle
latency, so at least 8-12 independent chains are needed to keep both busy; 12 fit in
registers with the two constant sources. The compiled assembly is checked for the
instruction on zmm registers and the count is reported, so a build that fell back to
narrower vectors shows up in the result instead of as a low number.

Each measurement runs in its own child process pinned to one CPU (``python -m
scaler.bench.peak --cpu N``), first on each core alone, then on all cores at once.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

CHAINS = 12  # independent accumulators: enough for 2 pipes x 6 cycles of dot latency
LANES = 16  # 32-bit lanes of a 512-bit register
MARK = "@bench-peak "


@dataclass(frozen=True)
class Kind:
    """One instruction to saturate: its LLVM intrinsic, operands, and work per instruction."""

    precision: str
    intrinsic: str
    accumulator: str  # "f32" or "i32" lanes
    operands: tuple[float | int, float | int]  # per-lane constants of the two sources
    ops_per_instruction: int  # FLOP (fp32, bf16) or integer ops (int8): 2 per multiply-add
    mnemonic: str  # what the compiled loop must contain, on ``register`` registers
    isa: str  # /proc/cpuinfo flag the instruction needs
    lanes: int = LANES
    register: str = "zmm"


# y <- y * m + c converges to c / (1 - m) = 1: no overflow, no denormals. The bf16 operands are
# pairs of bf16 1e-3 (0x3A83) packed in 32-bit lanes: each step adds 2e-6 to a lane; the
# int8 operands are u8 1 x s8 1 in each byte: integer lanes wrap harmlessly.
KINDS = {
    "fp32": Kind("fp32", f"llvm.fma.v{LANES}f32", "f32", (0.999999, 1e-6), LANES * 2,
                 "vfmadd", "avx512f"),
    "bf16": Kind("bf16", "llvm.x86.avx512bf16.dpbf16ps.512", "f32", (0x3A833A83, 0x3A833A83),
                 LANES * 2 * 2, "vdpbf16ps", "avx512_bf16"),
    "int8": Kind("int8", "llvm.x86.avx512.vpdpbusd.512", "i32", (0x01010101, 0x01010101),
                 LANES * 4 * 2, "vpdpbusd", "avx512_vnni"),
}
# Probes that explain a peak rather than being one. The same FMAs on 256-bit ymm registers:
# if they reach the zmm rate, the core's FMA pipes are 256 bits wide and run AVX-512 in two
# halves (Zen 4), so the 512-bit peak is half of what two 512-bit pipes would give (Zen 5).
# Two dependent zmm chains are bound by the FMA latency (4 cycles on Zen 3, 4 and 5), not by
# the pipes: their rate gives the clock, GFLOP/s / (2 chains x 32 FLOP / 4 cycles).
YMM = Kind("fp32", "llvm.fma.v8f32", "f32", (0.999999, 1e-6), 8 * 2, "vfmadd", "avx2",
           lanes=8, register="ymm")
FMA_LATENCY_CYCLES = 4
PROBES = {"fp32_ymm": (YMM, CHAINS), "fp32_2_chains": (KINDS["fp32"], 2)}


def build_kernel(kind: Kind, chains: int = CHAINS) -> Any:
    """A jitted ``kernel(iters) -> float`` running ``iters * chains`` ``kind`` instructions
    on ``chains`` independent 512-bit accumulators."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    i32, f32 = ir.IntType(32), ir.FloatType()
    lanes = kind.lanes
    acc_type = ir.VectorType(f32 if kind.accumulator == "f32" else i32, lanes)
    src_type = acc_type if kind.precision == "fp32" else ir.VectorType(i32, lanes)

    @intrinsic
    def chains_of(typingctx: Any, iters: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            (n,) = args
            fn_type = ir.FunctionType(acc_type, [acc_type, src_type, src_type])
            fn = (builder.module.globals.get(kind.intrinsic)
                  or ir.Function(builder.module, fn_type, kind.intrinsic))
            a, b = (ir.Constant(src_type, [v] * lanes) for v in kind.operands)
            entry = builder.basic_block
            loop = builder.append_basic_block("peak.loop")
            done = builder.append_basic_block("peak.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            i = builder.phi(n.type)
            i.add_incoming(ir.Constant(n.type, 0), entry)
            accs = []
            for k in range(chains):
                acc = builder.phi(acc_type)
                start = ([(k + 1) / chains + lane * 1e-3 for lane in range(lanes)]
                         if kind.accumulator == "f32" else [k + lane for lane in range(lanes)])
                acc.add_incoming(ir.Constant(acc_type, start), entry)
                accs.append(acc)
            new = [builder.call(fn, [acc, a, b]) for acc in accs]
            for acc, value in zip(accs, new):
                acc.add_incoming(value, loop)
            following = builder.add(i, ir.Constant(n.type, 1))
            i.add_incoming(following, loop)
            builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
            builder.position_at_end(done)
            add = builder.fadd if kind.accumulator == "f32" else builder.add
            total = new[0]
            for value in new[1:]:  # every chain feeds the result: none is dead code
                total = add(total, value)
            result = builder.extract_element(total, ir.Constant(i32, 0))
            for lane in range(1, lanes):
                result = add(result, builder.extract_element(total, ir.Constant(i32, lane)))
            if kind.accumulator == "i32":
                result = builder.sitofp(result, ir.DoubleType())
            else:
                result = builder.fpext(result, ir.DoubleType())
            return result

        return types.float64(types.int64), codegen

    @njit
    def kernel(iters: int) -> float:
        return chains_of(iters)

    return kernel


def vector_instructions(kernel: Any, kind: Kind) -> int:
    """How many ``kind`` instructions on its register width the compiled kernel holds."""
    asm = kernel.inspect_asm(kernel.signatures[0])
    return len(re.findall(rf"\b{kind.mnemonic}\w*\s+[^\n]*%{kind.register}", asm))


def measure_here(kind: Kind, seconds: float, reps: int,
                 chains: int = CHAINS) -> dict[str, Any]:
    """G(FL)OP/s of ``reps`` runs of about ``seconds / reps`` each, in this process."""
    kernel = build_kernel(kind, chains)
    kernel(1000)  # compile
    ops_per_iter = chains * kind.ops_per_instruction
    probe = 1_000_000
    t0 = time.perf_counter()
    kernel(probe)
    per_iter = max((time.perf_counter() - t0) / probe, 1e-12)
    iters = max(int(seconds / reps / per_iter), 1000)
    values = []
    for _ in range(reps):
        t0 = time.perf_counter()
        kernel(iters)
        values.append(iters * ops_per_iter / (time.perf_counter() - t0) / 1e9)
    return {"precision": kind.precision, "gops": [round(v, 2) for v in values],
            "median_gops": statistics.median(values), "iters_per_rep": iters,
            "chains": chains, "lanes": kind.lanes,
            "vector_instructions": vector_instructions(kernel, kind),
            "instruction": f"{kind.mnemonic} {kind.register}"}


def run_children(cpus: list[int], kinds: list[str], seconds: float,
                 reps: int) -> list[dict[str, Any]]:
    """One pinned child per CPU in ``cpus``, all at the same time; their results."""
    procs = [subprocess.Popen([sys.executable, "-m", "scaler.bench.peak", "--cpu", str(cpu),
                               "--kinds", ",".join(kinds), "--seconds", str(seconds),
                               "--reps", str(reps)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cpu in cpus]
    results = []
    for cpu, proc in zip(cpus, procs):
        out, err = proc.communicate(timeout=120 + 4 * seconds * len(kinds))
        lines = [line for line in out.splitlines() if line.startswith(MARK)]
        if proc.returncode != 0 or not lines:
            tail = err.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise RuntimeError(f"peak child on CPU {cpu} failed: {tail[0]}")
        results.append({"cpu": cpu, **json.loads(lines[-1][len(MARK):])})
    return results


def measure_peak(core_cpus: list[int], seconds: float, reps: int,
                 isa: tuple[str, ...] = ()) -> dict[str, Any]:
    """Peaks per core (each core alone, then all cores together) from pinned children.

    ``core_cpus`` holds one CPU of each physical core. fp32 always; bf16 and int8 when the
    CPU has the instruction (``isa`` flags). The per-core peak is the median of every solo
    repetition; ``machine`` is that times the cores, and the concurrent run checks that all
    cores reach it at once. The fp32 figures are also at the top level (``*_gflops``), with
    the probes (``PROBES``, solo runs only) that tell the FMA width and the clock.
    """
    kinds = [k for k, kind in KINDS.items() if k == "fp32" or kind.isa in isa]
    solo = [run_children([cpu], kinds + list(PROBES), seconds, reps)[0] for cpu in core_cpus]
    together = run_children(core_cpus, kinds, seconds, reps) if len(core_cpus) > 1 else solo
    by_precision = {}
    for k in kinds:
        per_core = statistics.median(v for r in solo for v in r["kinds"][k]["gops"])
        by_precision[k] = {
            "per_core_gops": round(per_core, 1),
            "machine_gops": round(per_core * len(core_cpus), 1),
            "concurrent_gops": round(sum(r["kinds"][k]["median_gops"] for r in together), 1),
            "instruction": KINDS[k].mnemonic,
            "zmm_instructions": min(r["kinds"][k]["vector_instructions"] for r in solo),
        }
    fp32 = by_precision["fp32"]
    probes = {name: statistics.median(v for r in solo for v in r["kinds"][name]["gops"])
              for name in PROBES}
    clock = probes["fp32_2_chains"] / (2 * KINDS["fp32"].ops_per_instruction
                                       / FMA_LATENCY_CYCLES)
    return {
        "method": (f"numba @intrinsic kernels: {CHAINS} independent 512-bit accumulators, "
                   "each updated by one FMA (fp32), vdpbf16ps (bf16) or vpdpbusd (int8) per "
                   "loop step; one pinned child per core, alone then all at once; median "
                   "of the repetitions"),
        "per_core_gflops": fp32["per_core_gops"],
        "cores": len(core_cpus),
        "machine_gflops": fp32["machine_gops"],
        "concurrent_gflops": fp32["concurrent_gops"],
        # the clock if the core did two 512-bit FMAs per cycle (what 266 GFLOP/s assumes)
        "implied_fma_clock_ghz": round(fp32["per_core_gops"] / (2 * LANES * 2), 2),
        "ymm_gflops": round(probes["fp32_ymm"], 1),
        "zmm_over_ymm": round(fp32["per_core_gops"] / probes["fp32_ymm"], 2),
        "latency_bound_gflops": round(probes["fp32_2_chains"], 1),
        "clock_ghz": round(clock, 2),
        "fp32_flop_per_cycle": round(fp32["per_core_gops"] / clock, 1),
        "precisions": by_precision,
        "cpu_model": cpu_model(),  # the CPU these peaks were measured on
        "solo": solo,
        "together": together,
    }


def cpu_model() -> str:
    """``model name`` of /proc/cpuinfo (family and model where it is generic, as in VMs)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return "unknown CPU"
    name = fields.get("model name", "unknown CPU")
    return f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def main(argv: list[str] | None = None) -> int:
    from affinity import bind

    p = argparse.ArgumentParser(prog="python -m scaler.bench.peak", description=__doc__)
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("--kinds", default="fp32",
                   help="comma-separated: fp32, bf16, int8, fp32_ymm, fp32_2_chains")
    p.add_argument("--seconds", type=float, default=3.0, help="per kind")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    bind([args.cpu], threads=1)
    table = {**{k: (kind, CHAINS) for k, kind in KINDS.items()}, **PROBES}
    kinds = {k: measure_here(table[k][0], args.seconds, args.reps, table[k][1])
             for k in args.kinds.split(",")}
    print(MARK + json.dumps({"kinds": kinds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
