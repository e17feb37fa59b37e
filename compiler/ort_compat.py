"""Models handed to onnxruntime (the calibrator and quantizer, `ember compare`, `ember debug`'s
reference) in the newest IR version the installed onnxruntime reads, and whether its integer
kernels saturate on this CPU. The onnx package may be newer than onnxruntime: onnx 1.23's helper
writes IR version 14, which onnxruntime 1.30 refuses ("Unsupported model IR version: 14, max
supported IR version: 13") although the model uses nothing of it. The version is found once by
asking onnxruntime to load a one-node model."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

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


def saturating_int8_kernels(cpuinfo: str | None = None) -> bool:
    """Whether onnxruntime's fused INT8 kernels (QLinearConv, QLinearMatMul: what its graph
    optimizations make of DequantizeLinear -> Conv/MatMul -> QuantizeLinear) may saturate on this
    CPU: an x86 CPU with AVX2 but neither VNNI nor AMX multiplies u8 x s8 pairs with VPMADDUBSW,
    whose int16 pair sums clip (onnxruntime's documented "u8s8 saturation"), so its results on a
    Q/DQ model differ from the model's own arithmetic there (6e-2 to 3e-1 rel-L2 on ember's test
    models, on an AMD EPYC with AVX2 only). Read from /proc/cpuinfo (`cpuinfo`: its text); False
    where it cannot be read."""
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


__all__ = ["for_onnxruntime", "max_ir_version", "saturating_int8_kernels"]
