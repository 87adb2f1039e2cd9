"""Built-in model builders and user model loading.

The built-in names and their input shapes are plain data so that ``check_spec`` can
validate a model without importing TensorFlow; everything that needs TensorFlow imports it
inside the function, through ``import_tf`` which applies the thread settings first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from scaler.engines.base import EngineError, EngineSpec

# name -> input shape without the batch dimension
BUILTIN_SHAPES: dict[str, tuple[int, int, int]] = {
    "resnet50": (224, 224, 3),  # the study's model, about 4.1 GMAC per image
    "mobilenetv2": (96, 96, 3),  # alpha 0.35: a real network that builds and runs fast
    "tiny": (32, 32, 3),  # a few convolutions: loads in about a second, for harness tests
}


def model_kind(model: str) -> str:
    """``builtin``, ``keras``, ``savedmodel``, or the format of a file that one engine alone
    runs (``tflite``: see each engine's ``native_suffixes``); EngineError if unusable."""
    from scaler.engines.registry import engine_for_suffix, engines

    if model in BUILTIN_SHAPES:
        return "builtin"
    if not os.path.exists(model):
        names = ", ".join(BUILTIN_SHAPES)
        raise EngineError(
            f"model {model!r} is neither a built-in model ({names}) nor an existing path"
        )
    native = engine_for_suffix(model)
    if native is not None:
        return next(s for s in native.native_suffixes if model.endswith(s)).lstrip(".")
    if model.endswith(".keras"):
        return "keras"
    if os.path.isfile(os.path.join(model, "saved_model.pb")):
        return "savedmodel"
    files = [f"a {s} file" for e in engines().values() for s in e.native_suffixes]
    raise EngineError(
        f"model path {model!r} is not {', '.join(['a .keras file', *files])} or a SavedModel "
        "folder"
    )


def import_tf(spec: EngineSpec) -> Any:
    """Import TensorFlow and set its thread pools before it runs any op.

    TF fixes its pools when its context starts; setting them later raises. Setting the
    same values again is allowed, so several engines can share one process if they agree.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(spec.inter_op_threads)
    except RuntimeError as exc:
        raise EngineError(
            f"TensorFlow threads already fixed in this process to "
            f"{tf.config.threading.get_intra_op_parallelism_threads()} intra-op; "
            f"cannot use {spec.threads}"
        ) from exc
    return tf


@dataclass
class Model:
    """A loaded model: ``forward`` maps a float32 batch to the first output."""

    name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    params: int
    forward: Any
    keras_model: Any = None  # set for built-in and .keras models (tflite converts it)
    saved_model_dir: str | None = None  # set for SavedModel folders
    handle: Any = None  # keeps a loaded SavedModel alive while forward is in use


def build_builtin(name: str, seed: int) -> Any:
    """A built-in Keras model with random weights (pretrained ones give the same speed)."""
    import keras

    keras.utils.set_random_seed(seed)
    shape = BUILTIN_SHAPES[name]
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=shape)
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(weights=None, input_shape=shape, alpha=0.35)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ],
        name="tiny",
    )


def load_model(spec: EngineSpec) -> Model:
    """The model ``spec.model`` names, built or loaded (TensorFlow must be imported)."""
    kind = model_kind(spec.model)
    if kind == "builtin":
        return _from_keras(spec.model, build_builtin(spec.model, spec.seed), spec.batch)
    if kind == "keras":
        import keras

        try:
            keras_model = keras.saving.load_model(spec.model, compile=False)
        except Exception as exc:  # a damaged or foreign file: any loader error
            raise EngineError(f"cannot load Keras model {spec.model!r}: {exc}") from exc
        return _from_keras(os.path.basename(spec.model), keras_model, spec.batch)
    if kind == "savedmodel":
        return _from_saved_model(spec.model, spec.batch)
    raise EngineError(f"a {kind} model cannot be loaded as a Keras model: {spec.model!r}")


def _from_keras(name: str, keras_model: Any, batch: int) -> Model:
    if len(keras_model.inputs) != 1:
        raise EngineError(f"model {name!r} has {len(keras_model.inputs)} inputs; scaler needs 1")
    tensor = keras_model.inputs[0]
    shape = _check_shape(name, tuple(tensor.shape), str(tensor.dtype), batch)
    return Model(
        name=name,
        input_shape=shape,
        params=int(keras_model.count_params()),
        forward=lambda x: keras_model(x, training=False),
        keras_model=keras_model,
    )


def _from_saved_model(path: str, batch: int) -> Model:
    import tensorflow as tf

    name = os.path.basename(os.path.normpath(path))
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise EngineError(f"SavedModel {path!r} has no serving_default signature")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise EngineError(f"SavedModel {path!r} has {len(inputs)} inputs; scaler needs 1")
    ((arg, tensor_spec),) = inputs.items()
    shape = _check_shape(name, tuple(tensor_spec.shape), tensor_spec.dtype.name, batch)
    first_output = sorted(signature.structured_outputs)[0]
    return Model(
        name=name,
        input_shape=shape,
        params=int(sum(v.shape.num_elements() for v in getattr(loaded, "variables", ()))),
        forward=lambda x: signature(**{arg: x})[first_output],
        saved_model_dir=path,
        handle=loaded,
    )


def _check_shape(name: str, shape: tuple, dtype: str, batch: int) -> tuple[int, ...]:
    """The input shape without batch; EngineError for shapes or dtypes scaler cannot feed."""
    if dtype != "float32":
        raise EngineError(f"model {name!r} takes {dtype} input; scaler feeds float32 only")
    if any(d is None for d in shape[1:]):
        raise EngineError(f"model {name!r} input shape {shape} has unknown dimensions")
    if shape[0] is not None and shape[0] != batch:
        raise EngineError(f"model {name!r} has a fixed batch of {shape[0]}, not {batch}")
    return tuple(int(d) for d in shape[1:])
