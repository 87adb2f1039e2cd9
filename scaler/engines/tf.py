"""The ``tf`` engine: a TensorFlow graph (oneDNN) traced once with a fixed input signature.

Eager ``model(x)`` is 3.5x slower here and grows memory per image, so every query goes
through one traced ``tf.function`` whose signature is the exact batch shape: it never
retraces. ``infer`` calls ``.numpy()`` on the output: that forces the computation to finish
and costs about 10 µs per query (measured against returning the tensor or a reduction).
"""

from __future__ import annotations

import os
import time
from typing import Any

from scaler.engines.base import THREADING_STYLES, EngineError, EngineSpec
from scaler.engines.models import import_tf, load_model
from scaler.engines.registry import EngineType, register, require_bf16_isa

_AMP_BF16 = "auto_mixed_precision_onednn_bfloat16"


class TfEngine:
    """fp32 and bf16 (see ``_set_precision``) inference of a Keras model or SavedModel."""

    def __init__(self, spec: EngineSpec) -> None:
        started = time.perf_counter()
        tf = import_tf(spec)
        _set_precision(tf, spec.precision)
        self.spec = spec
        self._tf = tf
        model = load_model(spec)
        self._model = model  # keeps the variables (and a SavedModel) alive
        signature = tf.TensorSpec((spec.batch, *model.input_shape), tf.float32)
        self._fn = tf.function(model.forward, input_signature=[signature])
        self._fn.get_concrete_function()  # trace now: load_s covers it, the timed loop not
        self.info: dict[str, Any] = {
            "engine": "tf",
            "precision": spec.precision,
            "model": model.name,
            "input_shape": [spec.batch, *model.input_shape],
            "params": model.params,
            "tf_version": tf.__version__,
            "keras_version": _keras_version(),
            "onednn": _onednn_enabled(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "load_s": round(time.perf_counter() - started, 3),
        }
        if spec.precision == "bf16":
            self.info["bf16_method"] = "onednn_auto_mixed_precision"
        from scaler.engines import onednn_probe  # oneDNN's ISA and kernels, read back

        self.info["kernel_isa"] = onednn_probe.read_back(spec)

    def make_input(self) -> Any:
        """A uniform [0, 1) float32 batch from the spec's seed, as a TF tensor made once."""
        import numpy as np

        rng = np.random.default_rng(self.spec.seed)
        shape = tuple(self.info["input_shape"])
        return self._tf.constant(rng.random(shape, dtype=np.float32))

    def infer(self, inputs: Any) -> None:
        self._fn(inputs).numpy()

    def close(self) -> None:
        self._fn = None
        self._model = None


def _set_precision(tf: Any, precision: str) -> None:
    """bf16 by TF's oneDNN auto mixed precision, which rewrites the graph to bf16.

    Measured here on ResNet50 with 2 threads it beat the Keras ``mixed_bfloat16`` policy
    (batch 32: 36.6 vs 34.9 images/s; batch 64: 38.0 vs 34.9) and, unlike the policy, it
    also converts user models, whose saved layers keep their float32 dtype policy. The
    option is process-wide and applies whenever a graph runs, so a process serves one tf
    precision: an fp32 engine after a bf16 one would silently run bf16, and is refused.
    """
    options = tf.config.optimizer.get_experimental_options()
    if precision == "bf16" and not _onednn_enabled():
        raise EngineError("bf16 on the tf engine needs oneDNN: unset TF_ENABLE_ONEDNN_OPTS=0")
    if precision == "bf16":
        tf.config.optimizer.set_experimental_options({_AMP_BF16: True})
    elif options.get(_AMP_BF16):
        raise EngineError("this process already runs bf16 TF graphs; fp32 needs a new process")


def _check(spec: EngineSpec, isa: tuple[str, ...]) -> None:
    require_bf16_isa(spec, isa)
    if spec.precision == "bf16" and _onednn_off():
        raise EngineError("bf16 on the tf engine needs oneDNN: unset TF_ENABLE_ONEDNN_OPTS=0")


def _onednn_off() -> bool:
    """TF's own rule: oneDNN is on by default on x86 Linux unless set to 0 or false."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("0", "false")


def _keras_version() -> str:
    import keras

    return keras.__version__


def _onednn_enabled() -> bool:
    """Whether TF's oneDNN ops are on (TF_ENABLE_ONEDNN_OPTS, default on for x86 Linux)."""
    from tensorflow.python.util import _pywrap_util_port  # the only place TF reports it

    return bool(_pywrap_util_port.IsMklEnabled())


ENGINE = register(EngineType(
    name="tf", summary="TensorFlow graph with oneDNN (fp32, bf16)",
    precisions=("fp32", "bf16"), default_for=("fp32", "bf16"), load=TfEngine,
    # measured here for ResNet50 224x224: 0.75 GB at batch 1, 10.7 GB at 1024
    memory_gb=(0.75, 0.0097), packages=("tensorflow-cpu", "tensorflow", "keras"),
    # stock TF's Eigen pool reads no OpenMP variable and cannot bind thread k to core k:
    # defaults is what tuned already runs; under model-zoo scaler binds thread k to CPU k
    # itself (scaler/worker/threads.py)
    check=_check, threading=THREADING_STYLES,
    isa_caps=True))  # TensorFlow's oneDNN reads ONEDNN_MAX_CPU_ISA
