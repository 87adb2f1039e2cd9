"""What TensorFlow's oneDNN kernels ran on: ``ONEDNN_VERBOSE`` in a probe process.

oneDNN prints, with ``ONEDNN_VERBOSE=1``, the instruction set it dispatches to (``info,cpu,
isa:Intel AVX2``: its effective ISA, after any ``ONEDNN_MAX_CPU_ISA`` cap) and each executed
primitive's implementation (``brg_conv_fwd:avx512_core``, ``x64:gemm:jit``). It reads the
variable once and then prints for every primitive it runs, so it can never be on in a
measured worker: a short probe process (the same model, precision and cap, batch 1, one
thread) runs it once, while the worker loads, and the answer is kept in the model cache for
the next worker of the same kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from scaler.engines.base import EngineSpec
from scaler.engines.isa_caps import env as cap_env
from scaler.engines.kernels import kernel_units

PROBE_ENV = "SCALER_ONEDNN_PROBE"  # set in the probe: its engine must not probe again
TIMEOUT_S = 300.0
COMPUTE = ("convolution", "inner_product", "matmul")


def parse(lines: list[str]) -> dict[str, Any]:
    """oneDNN's effective ISA and the implementations of the compute primitives executed."""
    isa = None
    kernels: Counter[str] = Counter()
    for line in lines:
        if not line.startswith("onednn_verbose,"):
            continue
        parts = line.strip().split(",")
        if "info" in parts[:3] and len(parts) > 4 and parts[3] == "cpu" and \
                parts[4].startswith("isa:"):
            isa = ",".join(parts[4:])[len("isa:"):].strip()  # the name may hold commas
        elif len(parts) > 6 and parts[2:5] == ["primitive", "exec", "cpu"] and \
                parts[5] in COMPUTE:
            kernels[parts[6]] += 1
    out = kernel_units(list(kernels.elements()))
    out.update(onednn_isa=isa, source="ONEDNN_VERBOSE in a probe process (batch 1, 1 thread)")
    return out


def read_back(spec: EngineSpec) -> dict[str, Any]:
    """The probe's answer for ``spec`` (cached per model, precision, cap and TF version);
    ``{"error": ...}`` when it cannot run, never an exception: the worker goes on."""
    if os.environ.get(PROBE_ENV):
        return {}
    from scaler.engines import cache

    try:
        path = cache.cache_root(spec.cache_dir) / "onednn-probe" / f"{_key(spec)}.result"
        meta, _ = cache.get_or_build(path, lambda tmp: _build(spec, tmp))
        return json.loads(path.read_text()) if meta else {}
    except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as exc:
        return {"error": " ".join(str(exc).split())[:200]}


def _key(spec: EngineSpec) -> str:
    model = spec.model
    if os.path.exists(model):
        st = os.stat(model)
        model = f"{os.path.abspath(model)}:{st.st_size}:{st.st_mtime_ns}"
    text = json.dumps([model, spec.precision, spec.isa, tf_version(),
                       sorted(_cpu_flags())])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def tf_version() -> str:
    """TensorFlow's version without importing it (2-3 s of CPU in a process that only asks
    for the probe's cached answer): the installed distribution that provides the
    ``tensorflow`` package (tensorflow, tensorflow-cpu, tensorflow-intel, ...), or the loaded
    module's own ``__version__`` where it is already imported."""
    loaded = sys.modules.get("tensorflow")
    if loaded is not None and hasattr(loaded, "__version__"):
        return str(loaded.__version__)
    from importlib import metadata

    names = metadata.packages_distributions().get("tensorflow", [])
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import tensorflow as tf  # no distribution names it (a source tree): ask the module

    return str(tf.__version__)


def _cpu_flags() -> set[str]:
    from affinity import read_isa

    return set(read_isa())


def _build(spec: EngineSpec, tmp: Path) -> dict[str, Any]:
    probe = dataclasses.replace(spec, batch=1, threads=1, inter_op_threads=1)
    env = {**os.environ, "ONEDNN_VERBOSE": "1", PROBE_ENV: "1", **cap_env(spec.isa)}
    fields = {f.name: getattr(probe, f.name) for f in dataclasses.fields(probe)}
    proc = subprocess.run([sys.executable, "-m", "scaler.engines.onednn_probe", "--spec",
                           json.dumps(fields)], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"oneDNN probe exited with {proc.returncode}: {tail}")
    result = parse(proc.stdout.splitlines() + proc.stderr.splitlines())
    tmp.write_text(json.dumps(result, sort_keys=True))
    return {"kind": "onednn-probe"}


def main(argv: list[str] | None = None) -> int:
    """The probe: load the model, run two queries; oneDNN prints what it ran."""
    from scaler.engines import load_engine

    p = argparse.ArgumentParser(prog="python -m scaler.engines.onednn_probe")
    p.add_argument("--spec", required=True)
    spec = EngineSpec(**json.loads(p.parse_args(argv).spec))
    engine = load_engine(spec)
    inputs = engine.make_input()
    engine.infer(inputs)
    engine.infer(inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
