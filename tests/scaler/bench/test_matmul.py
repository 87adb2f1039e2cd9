"""The large-matmul ceiling: a real pinned child per run, and its rows from hand-made figures.

The child is judged on what it read back (a kernel per precision, the precision it ran in),
never on its speed; the rows are judged on hand-made figures whose shares are known.
"""

from __future__ import annotations

from scaler.bench import report
from scaler.bench.matmul import measure_matmul


def test_the_child_reads_back_the_kernel_of_each_precision():
    out = measure_matmul(0, ["fp32", "int8"], 64, 0.01, 1)
    fp32, int8 = out["precisions"]["fp32"], out["precisions"]["int8"]
    assert fp32["kernels"] and fp32["kernels"][0]["runtime_precision"] == "f32"
    assert int8["kernels"] and int8["kernels"][0]["runtime_precision"] in ("u8", "i8")
    assert fp32["median_gops"] > 0 and int8["median_gops"] > 0
    assert out["threads"] == 1 and out["cpu"] == 0


def test_rows_give_the_share_of_the_peak_and_say_when_it_is_above():
    results = {"sections": {
        "peak": {"cores": 2, "precisions": {
            "int8": {"per_core_gops": 920.0, "concurrent_gops": 1800.0, "machine_gops": 1840.0,
                     "instruction": "vpdpbusd"},
            "fp32": {"per_core_gops": 193.0, "concurrent_gops": 380.0, "machine_gops": 386.0,
                     "instruction": "vfmadd231ps"}}},
        "matmul": {"size": 1024, "precisions": {
            "fp32": {"median_gops": 154.4, "kernels": [{"kernel": "gemm_mlas_f32"}]},
            "int8": {"median_gops": 4600.0, "kernels": [{"kernel": "brgemm_avx512_amx_I8"}]}}}}}
    rows = {r["figure"]: r["value"] for r in report.rows(results) if r["section"] == "matmul"}
    assert rows["fp32 1024^3 matmul, 1 thread"] == (
        "154.4 G(FL)OP/s (gemm_mlas_f32) = 80% of the fp32 instruction peak per core")
    assert "= 500% of the int8 instruction peak per core (above it: the kernel ran on AMX" in \
        rows["int8 1024^3 matmul, 1 thread"]
