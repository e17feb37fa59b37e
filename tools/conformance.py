"""Foundation conformance over ONNX's node test suite (onnx.backend.test.case.node).

For every case: import -> print -> re-parse -> print must give identical text, or the import must
be rejected with ModelImportError; anything else is a crash. For every case whose ops are all in
the foundation list, convert-onnx-to-nn must succeed with every op verified and every shape
inferred (ranked, no unknown dims), and the nn interpreter's outputs are checked against the
stored ones (rtol 1e-3, atol 1e-5; dtype and shape exact).

    python tools/conformance.py [--verbose] [--filter 'test_conv*']
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import sys
import warnings

import numpy as np
from onnx import numpy_helper

# The ONNX ops of the foundation issue's list (point 4).
FOUNDATION_OPS = set("""
Conv ConvTranspose Gemm MatMul Add Sub Mul Div Pow Sqrt Reciprocal Exp Log Abs Neg Erf Tanh Sigmoid
Relu LeakyRelu Elu Selu HardSigmoid HardSwish Softplus Gelu Clip Min Max Mean Sum Where Equal Less
Greater LessOrEqual GreaterOrEqual And Or Not Xor Cast CastLike BatchNormalization
InstanceNormalization LayerNormalization GroupNormalization Softmax LogSoftmax ReduceSum ReduceMean
ReduceMax ReduceMin ReduceProd ReduceL2 ReduceSumSquare ArgMax ArgMin MaxPool AveragePool
GlobalAveragePool GlobalMaxPool Reshape Flatten Transpose Squeeze Unsqueeze Concat Split Slice
Gather GatherElements Expand Tile Pad Resize LRN DepthToSpace SpaceToDepth Identity Dropout Constant
ConstantOfShape Shape Size Range Trilu CumSum Einsum QuantizeLinear DequantizeLinear
""".split())


def _array(x):
    return numpy_helper.to_array(x) if hasattr(x, "data_type") else np.asarray(x)


def fully_inferred(module) -> bool:
    from ember.dialects.nn.base import NNOp
    from ember.dialects.tensor_types import UNKNOWN, shape_of

    for op in module.walk():
        if isinstance(op, NNOp):
            for r in op.results:
                shape = shape_of(r)
                if shape is None or UNKNOWN in shape:
                    return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="*")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from onnx.backend.test.case.node import collect_testcases
    from xdsl.parser import Parser

    from ember.compiler.interpret import interpret
    from ember.compiler.onnx_importer import graph_io_names, import_onnx
    from ember.dialects import ember_context
    from ember.errors import EmberError, ModelImportError
    from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN

    ctx = ember_context()
    imp = collections.Counter()
    leg = collections.Counter()
    reasons: dict[str, list[str]] = collections.defaultdict(list)
    cases = [c for c in collect_testcases(None) if fnmatch.fnmatch(c.name, args.filter)]
    for case in cases:
        try:
            module = import_onnx(case.model)
            text = str(module)
            if str(Parser(ctx, text).parse_module()) != text:
                imp["crashed"] += 1
                reasons["round-trip mismatch"].append(case.name)
                continue
            imp["imported"] += 1
        except ModelImportError:
            imp["rejected"] += 1
            continue
        except Exception as e:  # a crash: what this sweep exists to find
            imp["crashed"] += 1
            reasons[f"import crash {type(e).__name__}: {str(e)[:80]}"].append(case.name)
            continue
        op_types = {n.op_type for n in case.model.graph.node}
        if not op_types <= FOUNDATION_OPS:
            continue
        leg["in list"] += 1
        try:
            ConvertOnnxToNN().apply(ctx, module)
            module.verify()
        except EmberError as e:
            leg["not legalized"] += 1
            reasons["not legalized: " + str(e).splitlines()[-1].strip()[:110]].append(case.name)
            continue
        except Exception as e:
            leg["crashed"] += 1
            reasons[f"legalize crash {type(e).__name__}: {str(e)[:80]}"].append(case.name)
            continue
        leg["legalized"] += 1
        if fully_inferred(module):
            leg["all shapes inferred"] += 1
        else:
            reasons["shapes not fully inferred"].append(case.name)
        try:
            in_names, out_names = graph_io_names(module)
            for inputs, outputs in case.data_sets:
                got = interpret(module, dict(zip(in_names, map(_array, inputs), strict=False)))
                for name, want in zip(out_names, map(_array, outputs), strict=True):
                    have = got[name]
                    assert have.dtype == want.dtype, f"dtype {have.dtype} != {want.dtype}"
                    assert have.shape == want.shape, f"shape {have.shape} != {want.shape}"
                    np.testing.assert_allclose(have, want, rtol=1e-3, atol=1e-5)
            leg["numbers match"] += 1
        except Exception as e:
            reasons[f"numbers: {type(e).__name__}: {str(e).strip().splitlines()[0][:90]}"].append(
                case.name)
    print(f"cases: {len(cases)}")
    print("import: " + ", ".join(f"{k} {imp[k]}" for k in ("imported", "rejected", "crashed")))
    print("foundation-op cases: " + ", ".join(f"{k} {v}" for k, v in leg.items()))
    for reason, names in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        shown = names if args.verbose else names[:4]
        more = " ..." if len(names) > len(shown) else ""
        print(f"  {len(names):4d}  {reason}  [{', '.join(shown)}{more}]")
    return 1 if imp["crashed"] or leg["crashed"] else 0


if __name__ == "__main__":
    sys.exit(main())
