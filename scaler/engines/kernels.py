"""Which instruction set an engine's compute kernels ran on, read back in the worker.

Two sources, never an assumption from the CPU's flags:

- the kernels an engine names: OpenVINO's runtime graph gives each executed node's
  ``primitiveType`` (``brgconv_avx512_amx_1x1_I8``, ``brgconv_avx512_I8``, ``jit_avx2_I8``,
  ``ref_any``); the unit is read from the name. The names tell AMX, AVX-512, AVX2 and SSE
  apart, not AVX-512 with VNNI from AVX-512 without it (both are ``brgconv_avx512_*``);
- the process's AMX permission after warm-up (``arch_prctl(ARCH_GET_XCOMP_PERM)``, bit 18,
  XTILEDATA): set once a runtime asked the kernel for AMX tile state. It says the runtime
  *enabled* AMX, not that it used it (OpenVINO asks for it when it starts on an AMX CPU, fp32
  included), so it is recorded as such: the fallback for engines that name no kernels.
"""

from __future__ import annotations

import ctypes
import platform
from collections import Counter
from collections.abc import Iterable
from typing import Any

ARCH_GET_XCOMP_PERM = 0x1022
XFEATURE_XTILEDATA = 18
_ARCH_PRCTL = {"x86_64": 158}

# unit names, widest first: the first whose marker is in a kernel's name is its unit
UNITS = (("amx", "amx"), ("avx512", "avx512"), ("avx2", "avx2"), ("avx", "avx"),
         ("sse41", "sse4"), ("sse41", "sse42"), ("ref", "ref"))


def unit_of(primitive: str) -> str:
    """The instruction-set unit a kernel's name says it runs on: ``amx``, ``avx512``,
    ``avx2``, ``avx``, ``sse41``, ``ref`` (reference C++, no vector ISA) or ``other``."""
    name = primitive.lower()
    for unit, marker in UNITS:
        if marker in name:
            return unit
    return "other"


def kernel_units(primitives: Iterable[str]) -> dict[str, Any]:
    """Counts per unit and per kernel name, of the compute nodes' primitive types."""
    names = Counter(primitives)
    units: Counter[str] = Counter()
    for name, count in names.items():
        units[unit_of(name)] += count
    return {"units": dict(units.most_common()), "kernels": dict(sorted(names.items())),
            "nodes": sum(names.values()), "source": "kernel names of the executed graph"}


def openvino_kernels(compiled: Any, layer_types: tuple[str, ...]) -> dict[str, Any]:
    """The unit of each compute layer's kernel in an OpenVINO compiled model (its runtime
    graph's ``primitiveType``, for the layers of ``layer_types``)."""
    names = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if ("primitiveType" in info and "layerType" in info
                and info["layerType"].astype(str) in layer_types):
            names.append(info["primitiveType"].astype(str))
    return kernel_units(names)


def amx_permission() -> bool | None:
    """Whether this process holds AMX tile-data permission (None: the kernel cannot say:
    not x86-64, or a kernel older than 5.16)."""
    number = _ARCH_PRCTL.get(platform.machine())
    if number is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    mask = ctypes.c_uint64(0)
    if libc.syscall(ctypes.c_long(number), ctypes.c_long(ARCH_GET_XCOMP_PERM),
                    ctypes.byref(mask)) != 0:
        return None
    return bool(mask.value >> XFEATURE_XTILEDATA & 1)


def summary(read_back: dict[str, Any] | None) -> str:
    """One line: "avx512: 54 of 54 compute nodes (AMX permission: no)"."""
    if not read_back:
        return "not read back"
    units = read_back.get("units") or {}
    nodes = read_back.get("nodes") or 0
    parts = [f"{unit}: {count} of {nodes} compute nodes" for unit, count in units.items()]
    perm = read_back.get("amx_permission")
    text = "; ".join(parts) or "no kernel names (engine names none)"
    if read_back.get("onednn_isa"):
        text += f" (oneDNN: {read_back['onednn_isa']})"
    if read_back.get("error"):
        text += f" (not read back: {read_back['error']})"
    if perm is not None:
        text += f" (AMX permission: {'yes' if perm else 'no'})"
    return text


def run_kernels(groups: list[dict[str, Any]]) -> list[str]:
    """One line per distinct (engine, precision, read-back) of a run's instances: what the
    compute kernels ran on, as the workers read it back."""
    seen: dict[str, None] = {}
    for g in groups:
        for inst in g.get("per_instance") or []:
            info = inst.get("engine") or {}
            if not isinstance(info, dict) or "amx_permission" not in inst and not info.get(
                    "kernel_isa"):
                continue
            read = {**(info.get("kernel_isa") or {}), "amx_permission": inst.get(
                "amx_permission")}
            what = f"{info.get('engine', g.get('engine'))} {info.get('precision', '')}".strip()
            seen[f"{what}: {summary(read)}"] = None
    return list(seen)


_RANK = {"ref": 0, "other": 0, "sse41": 1, "avx": 2, "avx2": 3, "avx512": 4, "amx": 5}


def _cap_rank(cap: str) -> int:
    if cap.startswith("avx512_core_amx"):
        return _RANK["amx"]
    if cap.startswith("avx512"):
        return _RANK["avx512"]
    return _RANK.get(cap.split("_")[0], _RANK["amx"])


def cap_warnings(cap: str | None, instances: list[dict[str, Any]], cpu_isa: tuple[str, ...],
                 precision: str) -> list[str]:
    """What a group's read-back says against its cap: a kernel above the cap (the cap did
    not hold), or int8/bf16 kernels without AMX where AMX was allowed and the CPU has it."""
    out: dict[str, None] = {}
    for inst in instances:
        units = ((inst.get("engine") or {}).get("kernel_isa") or {}).get("units") or {}
        if not units:
            continue  # the engine names no kernels: nothing to hold against the cap
        limit = _cap_rank(cap) if cap and cap != "native" else _RANK["amx"]
        above = sorted(u for u in units if _RANK.get(u, 0) > limit)
        if above:
            out[f"kernels above the --isa {cap} cap read back: {', '.join(above)}"] = None
        amx_allowed = limit >= _RANK["amx"] and "amx_tile" in cpu_isa
        if amx_allowed and precision in ("int8", "bf16") and "amx" not in units:
            out[f"{precision} on a CPU with AMX, AMX allowed, but no kernel ran on AMX "
                f"({', '.join(units)})"] = None
    return list(out)
