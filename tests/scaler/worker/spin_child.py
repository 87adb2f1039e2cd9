"""A child for the spin test: an ONNX Runtime session with its intra-op spinning on or off
(``sys.argv[1]``: 1 or 0), a few queries, then ``scaler.worker.threads.idle_spin``; prints
the result as JSON. Run as ``python -m tests.scaler.worker.spin_child 1``."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from scaler.worker import threads

SIZE = 192
THREADS = 2


def model() -> bytes:
    """Four chained matmuls of SIZE x SIZE: enough work to wake every intra-op thread."""
    rng = np.random.default_rng(0)
    weights = [helper.make_tensor(f"w{k}", TensorProto.FLOAT, [SIZE, SIZE],
                                  rng.random((SIZE, SIZE), dtype=np.float32).ravel().tolist())
               for k in range(4)]
    nodes = [helper.make_node("MatMul", ["x" if k == 0 else f"y{k - 1}", f"w{k}"],
                              ["y" if k == 3 else f"y{k}"]) for k in range(4)]
    graph = helper.make_graph(
        nodes, "spin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SIZE, SIZE])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=8).SerializeToString()


def main() -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", sys.argv[1])
    session = ort.InferenceSession(model(), options, providers=["CPUExecutionProvider"])
    x = np.ones((SIZE, SIZE), dtype=np.float32)
    for _ in range(20):
        session.run(None, {"x": x})
    print(json.dumps(threads.idle_spin(THREADS)))


if __name__ == "__main__":
    main()
