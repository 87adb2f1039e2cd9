"""The conversion child: ``python -m scaler.engines.convert MODULE SPEC_JSON OUT_PATH``.

Converting a model (to ``.tflite``, to OpenVINO IR, with int8 calibration) imports
TensorFlow and can peak at gigabytes; none of that should stay in the worker whose speed and
memory are measured. An engine module that converts defines ``convert(spec, out) -> dict``
and calls :func:`convert_in_child`; this child imports that module by name and prints the
metadata as its last stdout line. The child inherits the worker's CPU affinity and thread
environment.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from scaler.engines.base import EngineError, EngineSpec


def convert_in_child(module: str, spec: EngineSpec, out: Path, what: str,
                     timeout_s: float) -> dict[str, Any]:
    """Run ``scaler.engines.<module>.convert(spec, out)`` in a child; its metadata."""
    argv = [sys.executable, "-m", "scaler.engines.convert", module,
            json.dumps(dataclasses.asdict(spec)), str(out)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"converting {spec.model} took over {timeout_s:g} s") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise EngineError(f"converting {spec.model} to {what} failed: {reason}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str]) -> int:
    module, spec_json, out = argv
    engine_module = importlib.import_module(f"scaler.engines.{module}")
    try:
        metadata = engine_module.convert(EngineSpec(**json.loads(spec_json)), Path(out))
    except EngineError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(metadata), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
