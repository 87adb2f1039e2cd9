"""Peak fp32 FMA throughput of one core, measured with a numba kernel that is nothing but FMAs.

Why not numpy: its OpenBLAS sgemm reaches only about 104 GFLOP/s per core here, far below what
the core can do, so it would flatter every efficiency figure computed against it. The kernel
below is LLVM IR emitted through a numba ``@intrinsic``: ``CHAINS`` independent 16-lane fp32
accumulators (512-bit zmm registers) each updated by ``llvm.fma.v16f32`` in a loop. Zen 5 has
two 512-bit FMA pipes with a 4-cycle latency, so at least 8 independent chains are needed to
keep both busy; 12 leave headroom and still fit in registers with the two constants. The
compiled assembly is checked for zmm FMAs and reported, so a build that silently fell back to
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
from typing import Any

CHAINS = 12
LANES = 16  # fp32 lanes of a 512-bit register
FLOPS_PER_FMA_LANE = 2
MARK = "@bench-peak "


def build_kernel(chains: int = CHAINS) -> Any:
    """A jitted ``kernel(iters) -> float32`` doing ``iters * chains`` 16-lane FMAs."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def fma_chains(typingctx: Any, iters: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            (n,) = args
            vec = ir.VectorType(ir.FloatType(), LANES)
            fn_type = ir.FunctionType(vec, [vec, vec, vec])
            name = f"llvm.fma.v{LANES}f32"
            fma = builder.module.globals.get(name) or ir.Function(builder.module, fn_type, name)
            # y <- y * m + c converges to c / (1 - m) = 1: no overflow, no denormals
            mul = ir.Constant(vec, [0.999999] * LANES)
            add = ir.Constant(vec, [1e-6] * LANES)
            entry = builder.basic_block
            loop = builder.append_basic_block("fma.loop")
            done = builder.append_basic_block("fma.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            i = builder.phi(n.type)
            i.add_incoming(ir.Constant(n.type, 0), entry)
            accs = []
            for k in range(chains):
                acc = builder.phi(vec)
                acc.add_incoming(ir.Constant(vec, [(k + 1) / chains + lane * 1e-3
                                                   for lane in range(LANES)]), entry)
                accs.append(acc)
            new = [builder.call(fma, [acc, mul, add]) for acc in accs]
            for acc, value in zip(accs, new):
                acc.add_incoming(value, loop)
            following = builder.add(i, ir.Constant(n.type, 1))
            i.add_incoming(following, loop)
            builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
            builder.position_at_end(done)
            total = new[0]
            for value in new[1:]:  # every chain feeds the result: none is dead code
                total = builder.fadd(total, value)
            result = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
            for lane in range(1, LANES):
                lane_value = builder.extract_element(total, ir.Constant(ir.IntType(32), lane))
                result = builder.fadd(result, lane_value)
            return result

        return types.float32(types.int64), codegen

    @njit
    def kernel(iters: int) -> float:
        return fma_chains(iters)

    return kernel


def zmm_fmas(kernel: Any) -> int:
    """How many 512-bit packed-single FMA instructions the compiled kernel contains."""
    asm = kernel.inspect_asm(kernel.signatures[0])
    return len(re.findall(r"vfmadd\d+ps\s+[^\n]*%zmm", asm))


def measure_here(seconds: float, reps: int, chains: int = CHAINS) -> dict[str, Any]:
    """GFLOP/s of ``reps`` runs of about ``seconds / reps`` each, in this process."""
    kernel = build_kernel(chains)
    kernel(1000)  # compile
    flops_per_iter = chains * LANES * FLOPS_PER_FMA_LANE
    probe = 1_000_000
    t0 = time.perf_counter()
    kernel(probe)
    per_iter = max((time.perf_counter() - t0) / probe, 1e-12)
    iters = max(int(seconds / reps / per_iter), 1000)
    values = []
    for _ in range(reps):
        t0 = time.perf_counter()
        kernel(iters)
        values.append(iters * flops_per_iter / (time.perf_counter() - t0) / 1e9)
    return {"gflops": [round(v, 2) for v in values], "median_gflops": statistics.median(values),
            "iters_per_rep": iters, "chains": chains, "lanes": LANES,
            "zmm_fma_instructions": zmm_fmas(kernel)}


def run_children(cpus: list[int], seconds: float, reps: int) -> list[dict[str, Any]]:
    """One pinned child per CPU in ``cpus``, all at the same time; their results."""
    procs = [subprocess.Popen([sys.executable, "-m", "scaler.bench.peak", "--cpu", str(cpu),
                               "--seconds", str(seconds), "--reps", str(reps)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cpu in cpus]
    results = []
    for cpu, proc in zip(cpus, procs):
        out, err = proc.communicate(timeout=120 + 4 * seconds)
        lines = [line for line in out.splitlines() if line.startswith(MARK)]
        if proc.returncode != 0 or not lines:
            tail = err.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise RuntimeError(f"peak child on CPU {cpu} failed: {tail[0]}")
        results.append({"cpu": cpu, **json.loads(lines[-1][len(MARK):])})
    return results


def measure_peak(core_cpus: list[int], seconds: float, reps: int) -> dict[str, Any]:
    """Peak per core (each core alone, then all cores together) from pinned children.

    ``core_cpus`` holds one CPU of each physical core. The per-core peak is the median of
    every solo repetition; ``machine_gflops`` is that times the cores, and the concurrent
    run checks that all cores reach it at once.
    """
    solo = [run_children([cpu], seconds, reps)[0] for cpu in core_cpus]
    together = run_children(core_cpus, seconds, reps) if len(core_cpus) > 1 else solo
    per_core = statistics.median(v for r in solo for v in r["gflops"])
    concurrent = sum(r["median_gflops"] for r in together)
    return {
        "method": (f"numba @intrinsic kernel: {CHAINS} independent {LANES}-lane fp32 FMA "
                   "chains in zmm registers, one pinned child per core; median of reps"),
        "per_core_gflops": round(per_core, 1),
        "cores": len(core_cpus),
        "machine_gflops": round(per_core * len(core_cpus), 1),
        "concurrent_gflops": round(concurrent, 1),
        "implied_fma_clock_ghz": round(per_core / (2 * LANES * FLOPS_PER_FMA_LANE), 2),
        "solo": solo,
        "together": together,
    }


def main(argv: list[str] | None = None) -> int:
    from affinity import bind

    p = argparse.ArgumentParser(prog="python -m scaler.bench.peak", description=__doc__)
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    bind([args.cpu], threads=1)
    print(MARK + json.dumps(measure_here(args.seconds, args.reps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
