"""The engine registry: one ``EngineType`` per inference runtime, registered by its module.

An engine module (``tf.py``, ``tflite.py``, ``openvino.py``, ``null.py``, or a plug-in named in
``SCALER_PLUGINS``) describes itself once: its name, the precisions it implements and those it
is the default for, the model files only it can run, the CPU or software it needs, the memory
one worker takes, the packages whose versions a result records, and how a worker loads it.
Validation, the CLI's ``--engine`` help, the memory check and ``host_info`` all read this
registry; no code outside the engine modules names an engine.

Registering costs nothing heavy: ``load`` imports the runtime (TensorFlow, LiteRT, ...) only
when a worker calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaler.engines.base import PRECISIONS, EngineError, EngineSpec

if TYPE_CHECKING:
    from scaler.engines.base import Engine

BF16_ISA = ("avx512_bf16", "amx_bf16")  # CPU flags (as in /proc/cpuinfo) for fast bf16
DEFAULT_MEMORY_GB = (0.75, 0.0097)  # an engine that gives no model: the tf figures


@dataclass(frozen=True)
class EngineType:
    """What the rest of scaler knows about one engine."""

    name: str
    summary: str  # one line for ``--engine`` help
    precisions: tuple[str, ...]
    load: Callable[[EngineSpec], Engine]  # in the (pinned) worker; heavy imports inside
    default_for: tuple[str, ...] = ()  # precisions whose default engine this is
    # model file suffixes this engine runs by default (``.tflite``, ``.onnx``): such a model
    # picks the engine under ``--engine auto``; no two engines may claim one suffix
    native_suffixes: tuple[str, ...] = ()
    # model kinds it accepts: builtin, keras, savedmodel, its own native suffixes, and
    # others' (openvino accepts ``onnx`` when asked with ``--engine openvino``)
    accepts: tuple[str, ...] = ("builtin", "keras", "savedmodel")
    infers: bool = True  # False: measures the harness only (never a recommendation)
    # resident memory of one worker for the built-in ResNet50: (base GB, GB per image)
    memory_gb: tuple[float, float] = DEFAULT_MEMORY_GB
    packages: tuple[str, ...] = ()  # distributions whose versions results record
    # requirements checked in the parent before any worker starts: CPU flags, software
    check: Callable[[EngineSpec, tuple[str, ...]], None] | None = None
    # the --threading styles (base.THREADING_STYLES) it can express; others are refused
    threading: tuple[str, ...] = ("tuned",)
    # how the runtime itself runs the study's bare metal (``model-zoo``: its own threads bind
    # thread k to core k and spin after work, as OpenMP did); "" when scaler binds them for it
    study_style: str = ""
    # its kernels honour ONEDNN_MAX_CPU_ISA (--isa caps); False: only --isa native
    isa_caps: bool = False
    isa_note: str = ""  # why it cannot cap, said when it refuses (e.g. "XNNPACK has no switch")

    def worker_memory_gb(self, batch: int) -> float:
        base_gb, per_image_gb = self.memory_gb
        return base_gb + per_image_gb * batch


BUILTIN = ("tf", "tflite", "openvino", "onnxruntime", "null")
_ENGINES: dict[str, EngineType] = {}


def register(engine: EngineType) -> EngineType:
    """Add an engine (a plug-in may replace none of the built-in ones)."""
    if engine.name in _ENGINES and _ENGINES[engine.name] != engine:
        raise ValueError(f"engine {engine.name!r} is already registered")
    for other in _ENGINES.values():
        shared = set(other.native_suffixes) & set(engine.native_suffixes)
        if other.name != engine.name and shared:
            raise ValueError(f"engine {engine.name!r}: {', '.join(sorted(shared))} files "
                             f"already run on {other.name!r} by default; list the kind in "
                             "accepts instead")
    bad = [p for p in engine.precisions if p not in PRECISIONS]
    if bad or not engine.precisions:
        raise ValueError(f"engine {engine.name!r}: unknown precision(s) {bad}")
    _ENGINES[engine.name] = engine
    return engine


def engines() -> dict[str, EngineType]:
    """Every registered engine by name, built-in ones first, then plug-ins."""
    from scaler.plugins import in_order

    _load_builtins()
    return in_order(_ENGINES, BUILTIN)


def get(name: str) -> EngineType:
    known = engines()
    if name not in known:
        from scaler.plugins import check

        check()  # a plug-in that failed to load is the likelier cause
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(known)}")
    return known[name]


def default_engine(precision: str) -> str:
    for engine in engines().values():
        if precision in engine.default_for:
            return engine.name
    for engine in engines().values():
        if engine.infers and precision in engine.precisions:
            return engine.name
    raise EngineError(f"no engine supports {precision}")


def engine_for_suffix(model: str) -> EngineType | None:
    """The engine a model file with this suffix runs on by default, if any (at most one:
    ``register`` refuses a suffix two engines claim)."""
    for engine in engines().values():
        if any(model.endswith(s) for s in engine.native_suffixes):
            return engine
    return None


def engines_accepting(kind: str) -> list[str]:
    """The engines that run a model of ``kind`` (``onnx``, ``xml``, ...)."""
    return [e.name for e in engines().values() if kind in e.accepts]


def engines_for(precision: str) -> str:
    """The inferring engines that implement ``precision``, for error messages."""
    names = [e.name for e in engines().values() if precision in e.precisions and e.infers]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)


def help_text() -> str:
    names = ", ".join(engines())
    defaults = ", ".join(f"{e.name} for {'/'.join(e.default_for)}" for e in engines().values()
                         if e.default_for)
    return f"{names} (default: {defaults})"


def version_packages() -> tuple[str, ...]:
    out: dict[str, None] = {}
    for engine in engines().values():
        out.update(dict.fromkeys(engine.packages))
    return tuple(out)


def require_bf16_isa(spec: EngineSpec, isa: tuple[str, ...]) -> None:
    """The shared rule of engines that run bf16: the CPU must have a bf16 dot product."""
    if spec.precision == "bf16" and not set(BF16_ISA) & set(isa):
        raise EngineError(f"bf16 needs a CPU with {' or '.join(BF16_ISA)}; this one has "
                          "neither: use fp32 or int8")


_loaded = False


def _load_builtins() -> None:
    """Import the built-in engine modules (each registers itself), then the plug-ins."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    from scaler import plugins

    for module in BUILTIN:  # each registers itself, in this order (help, choices)
        importlib.import_module(f"scaler.engines.{module}")
    plugins.load()
