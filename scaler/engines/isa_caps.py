"""Instruction-set caps (``--isa``): the newest instructions an engine's kernels may use.

The study's throughput headline (int8 3.49x fp32) spans two Xeon generations: AVX-512 with
VNNI against AVX-512 without it. oneDNN, inside OpenVINO's CPU plugin and TensorFlow, reads
``ONEDNN_MAX_CPU_ISA`` once, when it first dispatches a kernel, and never uses instructions
above it: one machine then runs the kernels of an older one. The worker sets it before the
runtime loads. Engines whose kernels are not oneDNN's (XNNPACK in tflite, MLAS in ONNX
Runtime) have no such switch and refuse any cap but ``native``.

A cap is named as oneDNN names it (``avx512_core_vnni``) or by the processor generation a
planner knows (``cascadelake``); a cap above what this CPU has is refused (oneDNN would
silently run the CPU's own best, and the run would say it was capped).
"""

from __future__ import annotations

from dataclasses import dataclass

from scaler.engines.base import EngineError

NATIVE = "native"


@dataclass(frozen=True)
class Cap:
    name: str  # oneDNN's name, lower case
    flags: tuple[str, ...]  # /proc/cpuinfo flags the CPU needs for it
    env: str  # ONEDNN_MAX_CPU_ISA's value


# oneDNN's ISA ladder, oldest first (dnnl_cpu_isa_t); each needs its predecessors' flags
# too. A rung is told by the flag that distinguishes it among those the topology records
# (``affinity.ISA_FLAGS``): SSE4.1 and AVX, which every x86-64 CPU of the last decade has,
# are not checked.
_LADDER = (
    Cap("sse41", (), "SSE41"),
    Cap("avx", (), "AVX"),
    Cap("avx2", ("avx2",), "AVX2"),
    Cap("avx2_vnni", ("avx_vnni",), "AVX2_VNNI"),
    Cap("avx512_core", ("avx512f",), "AVX512_CORE"),
    Cap("avx512_core_vnni", ("avx512_vnni",), "AVX512_CORE_VNNI"),
    Cap("avx512_core_bf16", ("avx512_bf16",), "AVX512_CORE_BF16"),
    Cap("avx512_core_amx", ("amx_tile", "amx_int8", "amx_bf16"), "AVX512_CORE_AMX"),
)
CAPS = {c.name: c for c in _LADDER}
# processor generations a planner knows -> the cap of their newest deep-learning instructions
ALIASES = {
    "haswell": "avx2",
    "skylake": "avx512_core",  # 1st-generation Xeon Scalable: AVX-512, no VNNI
    "cascadelake": "avx512_core_vnni",  # 2nd generation: VNNI ("DL Boost")
    "icelake": "avx512_core_vnni",
    "cooperlake": "avx512_core_bf16",
    "sapphirerapids": "avx512_core_amx",
}


def resolve(text: str) -> str:
    """A cap's oneDNN name (``native`` stays); UsageError naming the choices otherwise."""
    name = text.strip().lower().replace("-", "_")
    if name == NATIVE or name in CAPS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise EngineError(f"unknown --isa {text!r}: choose native, "
                      f"{', '.join(CAPS)} or {', '.join(ALIASES)}")


def alias_note(text: str) -> str | None:
    """What an alias maps to, said to the user ("cascadelake = avx512_core_vnni")."""
    name = text.strip().lower().replace("-", "_")
    return f"--isa {name} = {ALIASES[name]}" if name in ALIASES else None


def needed_flags(cap: str) -> tuple[str, ...]:
    """Every CPU flag a cap needs: its own and those of the rungs below it (the AVX2 VNNI
    rung is not below AVX-512: an AVX-512 CPU need not have avx_vnni)."""
    out: list[str] = []
    for c in _LADDER:
        if c.name == "avx2_vnni" and cap != "avx2_vnni":
            continue
        out += c.flags
        if c.name == cap:
            return tuple(out)
    raise EngineError(f"unknown ISA cap {cap!r}")


def check_cpu(cap: str, isa: tuple[str, ...]) -> None:
    """Refuse a cap above what this CPU has (oneDNN would ignore it silently)."""
    if cap == NATIVE:
        return
    missing = _missing(cap, isa)
    if missing:
        raise EngineError(f"--isa {cap} is above this CPU: it lacks {', '.join(missing)}; "
                          f"the highest cap here is {highest(isa) or 'none'}")


def highest(isa: tuple[str, ...]) -> str | None:
    """The highest cap this CPU can run (None: not even SSE4.1)."""
    best = None
    for c in _LADDER:
        if not _missing(c.name, isa):
            best = c.name
    return best


def _missing(cap: str, isa: tuple[str, ...]) -> list[str]:
    return [f for f in needed_flags(cap) if f not in isa]


def env(cap: str) -> dict[str, str]:
    """The environment a worker sets before its runtime loads (empty for native)."""
    if cap == NATIVE:
        return {}
    value = CAPS[cap].env
    return {"ONEDNN_MAX_CPU_ISA": value, "DNNL_MAX_CPU_ISA": value}
