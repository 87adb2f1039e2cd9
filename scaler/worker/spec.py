"""The worker spec: everything one worker needs, as one frozen dataclass.

The coordinator builds a ``WorkerSpec`` per instance and a target passes it to
``python -m scaler.worker --spec JSON``; the worker parses it with the same class. For
debugging, every field is also a command-line option of its own (``--engine tflite
--precision int8 --cpus 0``), generated from the fields below, so there is one list of
worker settings and no hand-built argv anywhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

from scaler.errors import UsageError


@dataclass(frozen=True)
class WorkerSpec:
    """One worker: what it runs, where it pins itself, and the limits of its timed loop."""

    engine: str = "tf"
    precision: str = "fp32"
    model: str = "resnet50"
    batch: int = 1
    instance: int = 0  # also the seed of its synthetic inputs
    cpus: tuple[int, ...] | None = None  # pin to these CPUs, in the worker's own numbering
    nodes: tuple[int, ...] | None = None  # bind memory to these NUMA nodes
    threads: int | None = None  # intra-op threads; None: the CPUs of its affinity
    inter_op_threads: int = 1
    cache_dir: str | None = None  # converted-model cache
    warmup_s: float = 1.0
    warmup_queries: int = 1
    progress_s: float = 0.25  # progress report interval
    chunk_s: float = 1.0  # samples are sent this often while measuring (a crash keeps them)
    max_queries: int = 250_000  # stop querying after this many (bounds a fast engine's samples)
    service_s: float = 0.0  # the null engine's fixed service time per query (tests)

    def __post_init__(self) -> None:  # JSON gives lists: keep the spec hashable
        for name in ("cpus", "nodes"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(int(v) for v in value))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise UsageError(f"worker spec: unknown field(s) {', '.join(unknown)}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"worker spec: not a valid spec ({exc})") from None

    def argv(self) -> tuple[str, ...]:
        """The worker's command-line arguments for this spec."""
        return ("--spec", self.to_json())

    def replace(self, **changes: Any) -> WorkerSpec:
        return dataclasses.replace(self, **changes)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--spec JSON`` and one option per field (the field's name with dashes)."""
    from affinity.cpulist import parse_cpulist

    parser.add_argument("--spec", default=None, help="the whole spec as JSON (as scaler sends)")
    defaults = WorkerSpec()
    for f in fields(WorkerSpec):
        option = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name in ("cpus", "nodes"):
            kind: Any = parse_cpulist
        elif f.name == "threads":
            kind = int
        elif default is None:
            kind = str
        else:
            kind = type(default)
        parser.add_argument(option, type=kind, default=None, dest=f.name,
                            help=f"(default: {default})")


def from_options(args: argparse.Namespace) -> WorkerSpec:
    """The spec of ``--spec`` (or the defaults), with the single-field options on top."""
    spec = WorkerSpec.from_json(args.spec) if args.spec else WorkerSpec()
    given = {f.name: getattr(args, f.name) for f in fields(WorkerSpec)
             if getattr(args, f.name, None) is not None}
    return dataclasses.replace(spec, **given)
