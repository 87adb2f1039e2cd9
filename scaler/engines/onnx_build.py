"""ONNX models made from code, in the conversion child: Keras -> ONNX, and int8 QDQ.

Built-in, ``.keras`` and SavedModel models go through ``tf2onnx.convert.from_function`` on a
traced ``tf.function`` of the model's forward pass with a dynamic batch: with Keras 3,
``tf2onnx.convert.from_keras`` fails (it looks up Keras 3 output tensor names in the graph
and raises ``KeyError: 'keras_tensor_5'``), while tracing the call works for the same layers.
The graph keeps Keras's NHWC input (tf2onnx inserts the transposes ONNX's NCHW convolutions
need; ORT's optimizer folds most of them). Nothing is downloaded: weights are the model's own
(random for the built-in models, as every engine uses).

int8 is ONNX Runtime's static post-training quantization (``quantize_static``) in QDQ form:
QuantizeLinear/DequantizeLinear pairs around every convolution and matmul, uint8
activations and int8 per-channel weights (ORT's recommended form for x86), ranges by MinMax
calibration on ``CALIBRATION_SAMPLES`` uniform [0, 1) inputs of batch 1 made from the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scaler.engines.base import EngineError, EngineSpec

OPSET = 17  # ORT 1.17+ and OpenVINO read it; QDQ per-channel needs >= 13
CALIBRATION_SAMPLES = 32  # as the tflite and openvino engines calibrate
INPUT_NAME = "input"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
           "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


def keras_to_onnx(spec: EngineSpec, out: Path) -> dict[str, Any]:
    """Write ``spec``'s (built-in, .keras or SavedModel) model as ONNX to ``out``; returns
    the model's name and input shape (without batch). Imports TensorFlow."""
    from scaler.engines.models import import_tf, load_model

    tf = import_tf(spec)  # sets TensorFlow's thread pools before anything runs an op
    import tf2onnx

    model = load_model(spec)
    signature = (tf.TensorSpec((None, *model.input_shape), tf.float32, name=INPUT_NAME),)
    forward = model.forward

    @tf.function(input_signature=signature)
    def serve(x: Any) -> Any:
        return forward(x)

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature,
                                                 opset=OPSET)
    except Exception as exc:  # tf2onnx raises many kinds for ops it cannot convert
        reason = " ".join(str(exc).split())[:200]
        raise EngineError(f"tf2onnx cannot convert {model.name!r}: {reason}") from exc
    out.write_bytes(proto.SerializeToString())
    return {"model": model.name, "input_shape": list(model.input_shape)}


def calibration_reader(name: str, shape: tuple[int, ...], seed: int) -> Any:
    """A ``CalibrationDataReader`` of ``CALIBRATION_SAMPLES`` uniform [0, 1) inputs."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader

    rng = np.random.default_rng(seed)
    samples = [{name: rng.random(shape, dtype=np.float32)} for _ in range(CALIBRATION_SAMPLES)]

    class Generated(CalibrationDataReader):
        def __init__(self) -> None:
            self._next = iter(samples)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._next, None)

        def rewind(self) -> None:
            self._next = iter(samples)

    return Generated()


def quantize(fp32: Path, out: Path, seed: int) -> dict[str, Any]:
    """Static QDQ int8 of the ONNX model at ``fp32`` into ``out``."""
    import onnx
    from onnxruntime import quantization as q

    model = onnx.load(str(fp32), load_external_data=False)
    (name, shape) = input_of(model, batch=1)
    reader = calibration_reader(name, shape, seed)
    try:
        q.quantize_static(str(fp32), str(out), reader, quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          per_channel=True, calibrate_method=q.CalibrationMethod.MinMax)
    except Exception as exc:  # ORT's quantizer raises many kinds for models it cannot take
        reason = " ".join(str(exc).split())[:200]
        raise EngineError(f"int8 quantization of {fp32.name!r} failed: {reason}") from exc
    return {"input_shape": list(shape[1:]), "calibration_samples": CALIBRATION_SAMPLES,
            "quantization": "static QDQ, uint8 activations, int8 per-channel weights, MinMax"}


def input_of(model: Any, batch: int) -> tuple[str, tuple[int, ...]]:
    """The one float input's name and its shape at ``batch``; EngineError otherwise."""
    from onnx import TensorProto

    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise EngineError(f"the ONNX model has {len(inputs)} inputs; scaler needs 1")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != TensorProto.FLOAT:
        raise EngineError("the ONNX model takes "
                          f"{TensorProto.DataType.Name(tensor.elem_type).lower()} input; "
                          "scaler feeds float32 only")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return inputs[0].name, batched_shape(dims, batch)


def batched_shape(dims: list[Any], batch: int) -> tuple[int, ...]:
    """The input shape with ``batch`` first: ``dims`` as ONNX gives them (an int, or a
    name/None for a symbolic dimension)."""
    if not dims or any(not isinstance(d, int) or d < 1 for d in dims[1:]):
        raise EngineError(f"the ONNX model's input shape {dims} has unknown dimensions")
    first = dims[0]
    if isinstance(first, int) and first >= 1 and first != batch:
        raise EngineError(f"the ONNX model has a fixed batch of {first}, not {batch}")
    return (batch, *dims[1:])


def quantized_ops(model: Any) -> dict[str, int]:
    """How many quantization nodes (QDQ, QLinear, integer ops) the graph holds, by type."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
