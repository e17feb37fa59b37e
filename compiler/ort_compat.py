"""Models handed to onnxruntime (the calibrator and quantizer, `ember compare`, `ember debug`'s
reference) in the newest IR version the installed onnxruntime reads. The onnx package may be
newer than onnxruntime: onnx 1.23's helper writes IR version 14, which onnxruntime 1.30 refuses
("Unsupported model IR version: 14, max supported IR version: 13") although the model uses
nothing of it. The version is found once by asking onnxruntime to load a one-node model."""

from __future__ import annotations

import functools

import onnx
from onnx import TensorProto, helper


@functools.cache
def max_ir_version() -> int:
    """The newest IR version the installed onnxruntime loads (onnx's own where it has none)."""
    try:
        import onnxruntime
    except ImportError:
        return onnx.IR_VERSION
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    for version in range(onnx.IR_VERSION, 6, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  ir_version=version)
        try:
            onnxruntime.InferenceSession(model.SerializeToString(), options,
                                         providers=["CPUExecutionProvider"])
        except Exception:  # noqa: S112 -- too new for it: try the one before
            continue
        return version
    return onnx.IR_VERSION


def for_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` itself, or a copy with the IR version onnxruntime reads where it is newer."""
    newest = max_ir_version()
    if model.ir_version <= newest:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ir_version = newest
    return copy


__all__ = ["for_onnxruntime", "max_ir_version"]
