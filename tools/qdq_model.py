"""Quantize an ONNX model the way TensorRT wants it, with onnxruntime's quantize_static: QDQ
format, symmetric int8 activations and weights (weights per output channel), MinMax ranges over
seeded random inputs of the model's own (static) input shapes. A quick INT8 model for SASS
checks and smoke tests; real calibration data goes through `ember build --int8 --calib-data`.
The model is first pre-processed as onnxruntime asks (`quant_pre_process`: shape inference,
constants folded, BatchNormalization folded into Conv), so that weights computed by nodes (the
light test models make theirs with ConstantOfShape) are initializers the quantizer quantizes;
`--no-preprocess` quantizes the model as given. A model of an opset below 13 is converted to 13
first (onnx.version_converter): per-channel DequantizeLinear needs its `axis`.

    python tools/qdq_model.py model.onnx model.qdq.onnx [--samples 16] [--seed 1] [--no-preprocess]

Integer inputs (token ids, attention masks) are all ones: any vocabulary takes them, and a mask
with zeros makes the masked scores' range (float32's lowest) give an infinite scale.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
from onnx import helper


def random_feed(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    initializers = {t.name for t in model.graph.initializer}
    feed = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        if any(d <= 0 for d in dims):
            raise SystemExit(f"input '{vi.name}' has a dynamic shape {dims}: give the model "
                             "static input shapes first")
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if np.issubdtype(dtype, np.integer):
            feed[vi.name] = np.ones(dims, dtype)
        else:
            feed[vi.name] = rng.standard_normal(dims).astype(dtype)
    return feed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("output")
    parser.add_argument("--samples", type=int, default=16, help="calibration batches (16)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-preprocess", action="store_true",
                        help="quantize the model as given (no quant_pre_process)")
    args = parser.parse_args(argv)
    import logging
    import os
    import tempfile

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice goes to the root logger
    source = args.model
    with tempfile.TemporaryDirectory() as scratch:
        model = onnx.load(source)
        if onnx_opset(model) < 13:
            from onnx import version_converter

            source = os.path.join(scratch, "opset13.onnx")
            onnx.save(version_converter.convert_version(model, 13), source)
        if not args.no_preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            given, source = source, os.path.join(scratch, "preprocessed.onnx")
            quant_pre_process(given, source, skip_symbolic_shape=True)
        quantize(source, args.output, args.samples, args.seed)
    print(f"wrote {args.output} ({args.samples} calibration batches"
          f"{'' if args.no_preprocess else ', pre-processed'})")
    return 0


def onnx_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def quantize(source: str, output: str, samples: int, seed: int) -> None:
    """quantize_static of the model at `source` into `output` (QDQ, symmetric int8, weights per
    channel) on `samples` seeded random batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(source)
    rng = np.random.default_rng(seed)
    feeds = [random_feed(model, rng) for _ in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    quantize_static(source, output, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


if __name__ == "__main__":
    sys.exit(main())
