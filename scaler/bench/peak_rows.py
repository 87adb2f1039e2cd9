"""The bench table's rows about peaks: the instruction peak per core and the large-matmul
ceiling, each naming the CPU or the kernel it was measured on."""

from __future__ import annotations

from typing import Any

from scaler.bench.rows import Rows, cond, section_of


def peak_rows(results: dict[str, Any], table: Rows) -> None:
    p = section_of(results, "peak")
    for prec, peak in (p.get("precisions") or {}).items():
        unit = "GOP/s" if prec == "int8" else "GFLOP/s"
        clock = ""
        if prec == "fp32" and "clock_ghz" in p:
            clock = (f"; clock {p['clock_ghz']:.2f} GHz (2 dependent FMA chains) -> ~"
                     f"{p['fp32_flop_per_cycle']:.1f} FLOP/cycle; ymm FMAs reach "
                     f"{p['ymm_gflops']:.1f} (zmm/ymm {p['zmm_over_ymm']:.2f}x)")
        table.add("peak", f"{prec} peak per core ({peak['instruction']}, zmm)",
                  f"{peak['per_core_gops']:.1f} {unit} on {p.get('cpu_model', 'this CPU')}"
                  f"{clock}", cond=cond(p))
        table.add("peak", f"{prec} peak, {p['cores']} cores at once",
                  f"{peak['concurrent_gops']:.1f} {unit} (per core x cores = "
                  f"{peak['machine_gops']:.1f})", cond=cond(p))


def matmul_rows(results: dict[str, Any], table: Rows) -> None:
    """The large-matmul ceiling per precision, as a share of the instruction peak per core
    (a share above 100% means the kernel ran on a unit whose peak was not measured)."""
    m = section_of(results, "matmul")
    peaks = section_of(results, "peak").get("precisions") or {}
    for prec, row in (m.get("precisions") or {}).items():
        kernel = ", ".join(k["kernel"] for k in row.get("kernels", [])) or "kernel not read back"
        value = f"{row['median_gops']:.1f} G(FL)OP/s ({kernel})"
        peak = (peaks.get(prec) or {}).get("per_core_gops")
        if peak:
            share = row["median_gops"] / peak
            value += f" = {share:.0%} of the {prec} instruction peak per core"
            if share > 1.0:
                value += " (above it: " + ("the kernel ran on AMX, whose peak is not measured"
                                           if "amx" in kernel.lower() else
                                           "a unit whose peak was not measured") + ")"
        table.add("matmul", f"{prec} {m.get('size')}^3 matmul, 1 thread", value, cond=cond(m))
