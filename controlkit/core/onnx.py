"""A minimal ONNX graph builder shared by the torch-free exports (policies, compact dynamics networks).

Float32 tensors with a free batch dimension, one op per call, constants as initializers; opset 17, IR 8.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class OnnxGraph:
    """Minimal ONNX graph builder: float32 tensors, one op per call, constants as initializers."""

    def __init__(self) -> None:
        from controlkit.core.extras import require

        require("onnx", "ONNX export")  # fail early, naming the extra

        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def input(self, name: str, size: int) -> str:
        from onnx import TensorProto, helper

        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", size]))
        return name

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def clip(self, x: str, lo: float, hi: float) -> str:
        return self.op("Clip", x, self.const(lo), self.const(hi))

    def slice(self, x: str, start: int, stop: int) -> str:
        return self.op("Slice", x, self.const([start], np.int64), self.const([stop], np.int64),
                       self.const([1], np.int64))

    def serialize(self, name: str, out_size: int, output: str = "action") -> bytes:
        """The checked model as bytes; the graph's result must be the tensor named ``output``."""
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(self.nodes, name, self.inputs,
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", out_size])],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="controlkit")
        model.ir_version = 8  # readable by onnxruntime >= 1.14
        onnx.checker.check_model(model)
        return model.SerializeToString()
