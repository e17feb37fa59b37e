"""onnxruntime running a Q/DQ model as written: the reference of the INT8 tests.

With its graph optimizations on, onnxruntime's CPU provider fuses DequantizeLinear -> MatMul/Conv
-> QuantizeLinear into integer kernels (QLinearMatMul, QLinearConv). On an x86 CPU with AVX2 but
no VNNI those multiply u8 x s8 pairs with VPMADDUBSW, which adds two products into a saturating
int16: sums that overflow it come out clipped (onnxruntime's documented "u8s8 saturation"; its
`reduce_range` quantizes weights to 7 bits to avoid it). The same model then gives different
numbers on different CPUs (an AMD EPYC with AVX2 only: 6e-2 to 3e-1 rel-L2 off on the tests'
models; with VNNI, or with optimizations off, 0). With optimizations off it runs the graph's own
arithmetic (each DequantizeLinear in float, the op in float, each QuantizeLinear rounding), which
is what a Q/DQ model means and what ember computes with exact integer sums: float rounding apart,
the two agree on any CPU."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort

from ember.compiler.ort_compat import for_onnxruntime


def run_as_written(model: onnx.ModelProto | str | os.PathLike,
                   feed: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of `model` (or the model at that path) on onnxruntime's CPU provider
    with graph optimizations disabled."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]
