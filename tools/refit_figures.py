"""Issue 14's refit figures for a model (default: `resnet_style()`, 8 residual blocks of 3x3
conv + BatchNorm (folded into the convs by the build) at 256 channels, 39 MB of FP32 weights;
the light models compute their weights with ConstantOfShape, so they have none to refit): a
REFIT plan built from the model, refit from a second ONNX file holding
the same graph with other weights (each float initializer scaled by a seeded factor in [0.9,
1.1]); the refit's time against the build's, whether the refit plan is byte-identical to a
REFIT build of the second file (so its tactics, and its speed, are the same), its outputs
against that build's, and a STRIP_PLAN plan's size against the full plan's, refit at load.

    python tools/refit_figures.py [MODEL.onnx] [--arch sm_90] [--fp16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import ember
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.plan import plan_bytes


def resnet_style(blocks: int = 8, channels: int = 256, hw: int = 32,
                 batch: int = 2) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def weight(name: str, *shape: int, positive: bool = False) -> str:
        scale = np.sqrt(2 / np.prod(shape[1:])) if len(shape) > 1 else 0.1
        a = rng.standard_normal(shape) * scale
        a = (np.abs(a) + 0.5 if positive else a).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    def conv_bn(x: str, cin: int, cout: int, name: str, relu: bool = True) -> str:
        nodes.append(helper.make_node("Conv", [x, weight(f"{name}.w", cout, cin, 3, 3)],
                                      [f"{name}.c"], pads=[1] * 4, name=name))
        nodes.append(helper.make_node(
            "BatchNormalization", [f"{name}.c", weight(f"{name}.g", cout),
                                   weight(f"{name}.b", cout), weight(f"{name}.m", cout),
                                   weight(f"{name}.v", cout, positive=True)],
            [f"{name}.bn"], name=f"{name}_bn"))
        if not relu:
            return f"{name}.bn"
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.r"], name=f"{name}_relu"))
        return f"{name}.r"

    x = conv_bn("x", 3, channels, "stem")
    for i in range(blocks):
        a = conv_bn(conv_bn(x, channels, channels, f"b{i}a"), channels, channels, f"b{i}b",
                    relu=False)
        nodes += [helper.make_node("Add", [a, x], [f"b{i}s"], name=f"b{i}add"),
                  helper.make_node("Relu", [f"b{i}s"], [f"b{i}o"], name=f"b{i}out")]
        x = f"b{i}o"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", weight("fc.w", 1000, channels),
                                        weight("fc.b", 1000)], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(
        nodes, "resnet_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                              [batch, 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1000])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def other_weights(model: onnx.ModelProto, seed: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, t in enumerate(out.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            factor = rng.uniform(0.9, 1.1, a.shape).astype(a.dtype)
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(a * factor, t.name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--arch", default=None, help="build for this GPU (no autotuning)")
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args()
    old = onnx.load(args.model) if args.model else resnet_style()
    new = other_weights(old)
    flags = BuilderFlag.REFIT | (BuilderFlag.FP16 if args.fp16 else 0)
    extra = {"target_arch": args.arch, "autotune": False} if args.arch else {}

    def build(model: onnx.ModelProto, more: int = 0) -> tuple[bytes, float]:
        start = time.perf_counter()
        data = plan_bytes(*build_model(model, BuilderConfig(flags=flags | more, **extra)))
        return data, time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "new.onnx"
        onnx.save(new, str(path))
        plan_old, build_s = build(old)
        runtime = ember.Runtime(device="cpu")
        engine = runtime.deserialize_cuda_engine(plan_old)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            refitter = ember.Refitter(engine, ember.Logger())
            if not ember.OnnxParserRefitter(refitter, ember.Logger()).refit_from_file(str(path)):
                raise SystemExit("refit_from_file failed")
            if refitter.get_missing_weights() or not refitter.refit_cuda_engine():
                raise SystemExit("refit_cuda_engine failed")
            best = min(best, time.perf_counter() - start)
        plan_new, _ = build(new)
        weights = sum(numpy_helper.to_array(t).nbytes for t in old.graph.initializer) / 2**20
        print(f"{Path(args.model).name if args.model else 'resnet_style'} ({weights:.1f} MiB "
              "of initializers), "
              f"{args.arch or 'cpu'}{' fp16' if args.fp16 else ''}")
        print(f"REFIT build {build_s:.2f} s; refit (refit_from_file + refit_cuda_engine, best "
              f"of 3) {best * 1e3:.1f} ms = {100 * best / build_s:.2f}% of the build")
        print("refit plan byte-identical to a REFIT build of the new file:",
              bytes(engine.serialize()) == plan_new)
        stripped, _ = build(new, BuilderFlag.STRIP_PLAN)
        print(f"STRIP_PLAN plan {len(stripped) / 2**20:.2f} MiB of the full "
              f"{len(plan_new) / 2**20:.2f} MiB = {100 * len(stripped) / len(plan_new):.2f}%")
        if not args.model and not args.arch:  # outputs on the CPU executor
            feed = {"x": np.random.default_rng(5).standard_normal((2, 3, 32, 32))
                    .astype(np.float32)}
            fresh = runtime.deserialize_cuda_engine(plan_new)
            se = runtime.deserialize_cuda_engine(stripped)
            refitter = ember.Refitter(se)
            ember.OnnxParserRefitter(refitter).refit_from_file(str(path))
            refitter.refit_cuda_engine()
            want = fresh.create_execution_context().execute(feed)
            for name, e in (("refit", engine), ("stripped, refit at load", se)):
                got = e.create_execution_context().execute(feed)
                same = all(np.array_equal(got[k], want[k]) for k in want)
                print(f"{name} outputs identical to the fresh build's: {same}")


if __name__ == "__main__":
    main()
