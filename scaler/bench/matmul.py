"""An achievable ceiling per precision: a large matrix multiply on one pinned core.

The instruction peaks (``peak.py``) say what a core's vector unit can do; a real kernel
library does less (loads, packing, tails). A layer-shaped multiply (``M x K`` activations by
a constant ``K x N`` weight, as a network's fully connected layer: ``M = K = N``) compiled by
OpenVINO's CPU plugin with one thread, fp32, bf16 (inference precision hint) and int8
(FakeQuantize on both operands, as NNCF leaves a quantized layer), gives the GOP/s the
engines' own kernels reach on this core. The kernel that ran is read back from the compiled
model (``brgemm_avx512_amx_I8``, ``gemm_mlas_f32``, ...), so the figure says which unit it
measured. One pinned child, one precision after the other, the median of the repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

MARK = "MATMUL_RESULT "
HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def build(precision: str, size: int) -> Any:
    """The OpenVINO model of one ``size``-cubed multiply at ``precision``."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([size, size], ov.Type.f32, name="a")
    weights = ops.constant((rng.standard_normal((size, size)) * 0.05).astype(np.float32))
    x: Any = a
    y: Any = weights
    if precision == "int8":
        def c(v: float) -> Any:
            return ops.constant(np.float32(v))

        x = ops.fake_quantize(a, c(0.0), c(1.0), c(0.0), c(1.0), 256)
        y = ops.fake_quantize(weights, c(-0.2), c(0.2), c(-0.2), c(0.2), 255)
    return ov.Model([ops.matmul(x, y, False, False)], [a])


def measure_here(precision: str, size: int, seconds: float, reps: int) -> dict[str, Any]:
    """GOP/s of the multiply in this (pinned) process, and the kernel that ran it."""
    import numpy as np
    import openvino as ov

    from scaler.engines.kernels import kernel_units

    core = ov.Core()
    compiled = core.compile_model(build(precision, size), "CPU", {
        "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": HINT[precision]})
    request = compiled.create_infer_request()
    inputs = np.random.default_rng(1).random((size, size), dtype=np.float32)
    request.set_input_tensor(ov.Tensor(inputs, shared_memory=True))
    request.infer()
    kernels = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in ("FullyConnected",
                                                                     "MatMul"):
            kernels.append((info["primitiveType"].astype(str),
                            info["runtimePrecision"].astype(str)))
    ops_per_call = 2.0 * size ** 3
    values = []
    for _ in range(reps):
        calls, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds or calls == 0:
            request.infer()
            calls += 1
        values.append(ops_per_call * calls / elapsed / 1e9)
    return {"precision": precision, "size": size, "gops": [round(v, 2) for v in values],
            "median_gops": round(statistics.median(values), 2),
            "kernels": [{"kernel": k, "runtime_precision": p} for k, p in kernels],
            "kernel_isa": kernel_units(k for k, _ in kernels)}


def measure_matmul(cpu: int, precisions: list[str], size: int, seconds: float,
                   reps: int) -> dict[str, Any]:
    """The ceiling of each precision on one core (a pinned child); ``{precision: {...}}``."""
    proc = subprocess.run(
        [sys.executable, "-m", "scaler.bench.matmul", "--cpu", str(cpu), "--precisions",
         ",".join(precisions), "--size", str(size), "--seconds", str(seconds),
         "--reps", str(reps)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300 + 2 * seconds * reps * len(precisions))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise RuntimeError(f"matmul child on CPU {cpu} failed: {tail[0]}")
    results = json.loads(lines[-1][len(MARK):])
    return {"cpu": cpu, "size": size, "threads": 1, "precisions": results,
            "method": f"OpenVINO CPU plugin, one {size}x{size} by {size}x{size} "
                      "multiply (constant weights, int8 by FakeQuantize on both operands), "
                      "1 thread on one pinned CPU; median of the repetitions"}


def main(argv: list[str] | None = None) -> int:
    from affinity import bind
    from scaler.engines.openvino_ir import without_telemetry

    p = argparse.ArgumentParser(prog="python -m scaler.bench.matmul", description=__doc__)
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    bind([args.cpu], threads=1)
    without_telemetry()
    out = {prec: measure_here(prec, args.size, args.seconds, args.reps)
           for prec in args.precisions.split(",")}
    print(MARK + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
