"""infer-shapes: recompute every nn op's result types from its operands, in program order.

After this pass each nn result type is what its op infers (symbolic dims kept symbolic), and each
function's result types match what it returns. A contradiction is a `PassError` naming the op.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ember.dialects.nn.base import NNOp, set_result_types
from ember.errors import PassError, ShapeError
from ember.passes.convert_onnx_to_nn import update_function_type


class InferShapes(ModulePass):
    name = "infer-shapes"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in module.walk():
            if isinstance(op, NNOp):
                try:
                    set_result_types(op, op.infer())
                except ShapeError as e:
                    raise PassError(f"infer-shapes: {op.name}: {e}") from None
        for fn in module.walk():
            if isinstance(fn, func.FuncOp):
                update_function_type(fn)
