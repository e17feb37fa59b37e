"""kmajor-matmul-weights: FP16/BF16 and INT8 matmul weights stored K-major for the tensor cores.

After this pass no FP16/BF16 `nn.matmul` (nor an int8 one, summing into int32) reads a
constant weight B of rank >= 2 as stored [..., K, N]: the weight is stored transposed
([..., N, K], a new store entry named `<weight>.T`) and the matmul's `transpose_b` is set, so
both operands are K-major (consecutive k adjacent), which Hopper's wgmma tactic and the INT8
tactics require and every tensor-core tactic reads in 16-byte chunks. PyTorch exports Linear
layers as MatMul with a [in, out] weight, so this is every such layer of a transformer.
Results are unchanged (the same values, read in another order); the original weight stays
where something else reads it. GPU builds run it after precision assignment.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ember.dialects.attributes import to_attribute
from ember.dialects.nn.elementwise import ConstantOp, WeightOp
from ember.dialects.nn.linear import MatMulOp
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.dialects.weights import weights_of
from ember.passes.convert_onnx_to_nn.builder import (
    insert_before,
    make_constant,
    traced_value,
    weight_name,
)
from ember.runtime.refit_recipes import apply, node

HALF = ("f16", "bf16")


def _int8(op: MatMulOp) -> bool:
    """8-bit operands (int8, or fold-qdq's E4M3): the 8-bit tensor cores read both K-major."""
    return any(all(str(element_type_of(v)) == t for v in (op.lhs, op.rhs))
               for t in ("i8", "f8E4M3FN"))


class KMajorMatmulWeights(ModulePass):
    name = "kmajor-matmul-weights"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        transposed: dict[object, object] = {}  # weight op -> its transposed copy
        for op in list(module.walk()):
            if not isinstance(op, MatMulOp) or op.prop("transpose_b", False) \
                    or str(element_type_of(op.output)) not in HALF and not _int8(op):
                continue
            w = op.rhs.owner
            shape = shape_of(op.rhs)
            if not isinstance(w, WeightOp | ConstantOp) or shape is None or len(shape) < 2:
                continue
            new = transposed.get(w)
            if new is None:
                array, recipe = traced_value(op.rhs, store)
                if array is None:
                    continue  # a module parsed from text: its weights are not here
                array = apply("swap_last", [array])
                new = insert_before(make_constant(array, store, f"{weight_name(op.rhs)}.T",
                                                  node("swap_last", [recipe])), op)
                transposed[w] = new
            op.operands[1] = new.results[0]
            op.properties["transpose_b"] = to_attribute(True)
            if not w.results[0].uses:
                w.detach()
                w.erase()
