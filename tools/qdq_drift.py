"""How far two correct INT8 runs of one QDQ transformer land apart, without PyTorch: a BERT-like
encoder written in plain ONNX (float embeddings in; L layers of hidden H, A heads, FFN 4H, erf
GELU, LayerNorm; seeded random weights), quantized by onnxruntime's quantize_static as the
benchmark quantizes (QDQ, symmetric int8, per-channel weights, 8 random calibration batches);
then ember's CPU plan of the QDQ model against onnxruntime's CPU run of it, and each against the
float model (rel-L2, and how many values differ).

ember sums int8 products exactly (int32) and scales once; onnxruntime's CPU run multiplies the
dequantized floats in FP32. The two agree exactly on small models; a few values near a rounding
boundary of the next quantize differ by one step on larger ones, and every later quantize
spreads them (session 13's notes: 0 values at 1 layer, 4.4e-2 rel-L2 at 4 layers of 768).
`--save PATH` keeps the QDQ model, e.g. for `ember compare PATH --backends
ember-cpu,onnxruntime --per-layer` (the first diverging layer).

    python tools/qdq_drift.py [--layers 4] [--hidden 768] [--heads 12] [--seq 128] [--batch 1]
        [--fp16] [--arch sm_90] [--save model.qdq.onnx]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper


def encoder(layers: int, hidden: int, heads: int, seq: int, batch: int,
            rng: np.random.Generator) -> onnx.ModelProto:
    """The BERT-like encoder: x [batch, seq, hidden] -> the last layer norm's output."""
    d = hidden // heads
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, a) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(h.make_node(op, ins, [out], name=out, **attrs))
        return out

    def linear(x: str, name: str, n_in: int, n_out: int) -> str:
        w = const(f"{name}.w", (rng.standard_normal((n_in, n_out)) * 0.02).astype(np.float32))
        b = const(f"{name}.b", (rng.standard_normal(n_out) * 0.02).astype(np.float32))
        return node("Add", [node("MatMul", [x, w], f"{name}.mm"), b], f"{name}.out")

    def layernorm(x: str, name: str) -> str:
        g = const(f"{name}.g", (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        b = const(f"{name}.beta", (0.1 * rng.standard_normal(hidden)).astype(np.float32))
        return node("LayerNormalization", [x, g, b], f"{name}.out", axis=-1, epsilon=1e-12)

    const("heads_shape", np.array([batch, seq, heads, d], np.int64))
    const("merge_shape", np.array([batch, seq, hidden], np.int64))
    const("scale", np.array(1 / np.sqrt(d), np.float32))
    const("sqrt2", np.array(np.sqrt(2), np.float32))
    const("one", np.array(1, np.float32))
    const("half", np.array(0.5, np.float32))
    x = "x"
    for i in range(layers):
        n = f"l{i}"
        q, k, v = (node("Reshape", [linear(x, f"{n}.{t}", hidden, hidden), "heads_shape"],
                        f"{n}.{t}.r") for t in "qkv")
        q = node("Transpose", [q], f"{n}.qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [k], f"{n}.kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [v], f"{n}.vt", perm=[0, 2, 1, 3])
        s = node("Mul", [node("MatMul", [q, k], f"{n}.qk"), "scale"], f"{n}.s")
        p = node("Softmax", [s], f"{n}.p", axis=-1)
        o = node("Transpose", [node("MatMul", [p, v], f"{n}.pv")], f"{n}.ot", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, "merge_shape"], f"{n}.or")
        x = layernorm(node("Add", [linear(o, f"{n}.o", hidden, hidden), x], f"{n}.res1"),
                      f"{n}.ln1")
        f = linear(x, f"{n}.f1", hidden, 4 * hidden)
        erf = node("Erf", [node("Div", [f, "sqrt2"], f"{n}.d")], f"{n}.erf")
        g = node("Mul", [node("Mul", [f, node("Add", [erf, "one"], f"{n}.e1")], f"{n}.g0"),
                         "half"], f"{n}.gelu")
        x = layernorm(node("Add", [linear(g, f"{n}.f2", 4 * hidden, hidden), x], f"{n}.res2"),
                      f"{n}.ln2")
    graph = h.make_graph(
        nodes, "bert_like", [h.make_tensor_value_info("x", T.FLOAT, [batch, seq, hidden])],
        [h.make_tensor_value_info(x, T.FLOAT, [batch, seq, hidden])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime's
    return model


def quantize(fp32: Path, qdq: Path, shape: tuple[int, ...], rng: np.random.Generator) -> None:
    """`fp32` quantized as bench_models.py quantizes (8 random calibration batches)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    feeds = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice
    quantize_static(str(fp32), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
    from ember.errors import EmberError
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--fp16", action="store_true", help="build ember's plan with FP16 too")
    p.add_argument("--arch", help="build ember's plan for this GPU target (e.g. sm_90: its INT8 "
                   "arithmetic, fold-quantize-scales' folded scales) and run it on the CPU "
                   "executor; default: a CPU plan")
    p.add_argument("--save", help="write the QDQ model here")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.batch, args.seq, args.hidden)
    tmp = Path(tempfile.mkdtemp())
    fp32, qdq = tmp / "fp32.onnx", tmp / "qdq.onnx"
    onnx.save(encoder(args.layers, args.hidden, args.heads, args.seq, args.batch, rng), fp32)
    quantize(fp32, qdq, shape, rng)
    if args.save:
        shutil.copy(qdq, args.save)
        print("QDQ model:", args.save)
    feed = {"x": np.random.default_rng(5).standard_normal(shape).astype(np.float32)}
    cpu = ["CPUExecutionProvider"]
    want = ort.InferenceSession(str(qdq), providers=cpu).run(None, feed)[0]
    ref = ort.InferenceSession(str(fp32), providers=cpu).run(None, feed)[0]
    try:
        config = BuilderConfig(target_arch=args.arch, autotune=False)
        if args.fp16:
            config.set_flag(BuilderFlag.FP16)
        manifest, sections = build_model(onnx.load(qdq), config)
    except EmberError as e:
        p.error(str(e))
    context = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()
    got = next(iter(context.execute(feed).values()))
    what = ("INT8+FP16" if args.fp16 else "INT8") + (f" ({args.arch} plan)" if args.arch else "")
    print(f"onnxruntime QDQ vs float: {rel(want, ref):.3e}")
    print(f"ember CPU {what} vs onnxruntime QDQ: {rel(got, want):.3e}; vs float: "
          f"{rel(got, ref):.3e}")
    print(f"values differing: {int((got != want).sum())} of {want.size} (max abs "
          f"{float(np.abs(got - want).max()):.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
