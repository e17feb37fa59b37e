"""The `kernel` dialect: what runs. Each op is one kernel template instance.

- `kernel.launch "conv" (%x, %w, %b) {params = {...}, origin = [...]}`: a template (conv, matmul,
  pool, reduce, softmax, transpose, ...) with its static parameters: the nn op's properties plus
  the shapes and element types of its operands and results (`in_shapes`, `out_shapes`,
  `out_dtypes`). CPU and CUDA implementations of a template read the same parameters. An
  optional `epilogue` region (conv, matmul) maps each output element before it is stored:
  block argument 0 is the kernel's own value, the rest are the trailing extra operands' elements
  (broadcast to the output shape); it ends with `kernel.yield`.
- `kernel.elementwise (%a, %b) {...} ({ ^bb0(%s0: f32, %s1: f32): ... kernel.yield %r })`: one
  output element computed from the inputs' elements (broadcast to the output shape) by a scalar
  region of `kernel.scalar` ops. Fusion moves scalar ops into these regions.
- `kernel.view %x`: the same bytes seen with another shape (a reshape): no kernel runs.
`origin` names the ONNX nodes a kernel came from; `tactic` records the choices codegen made.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, StringAttr
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    opt_region_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import HasParent, IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

from ember.dialects.nn.functions import BINARY, UNARY

# kernel.scalar functions beyond the nn tables: select(c, a, b) and cast (to the result type)
SCALAR_EXTRA = {"select": 3, "cast": 1}


@irdl_op_definition
class LaunchOp(IRDLOperation):
    name = "kernel.launch"
    template = prop_def(StringAttr)
    params = prop_def(DictionaryAttr)
    origin = opt_prop_def(ArrayAttr)
    tactic = opt_prop_def(DictionaryAttr)
    inputs = var_operand_def()
    outputs = var_result_def()
    epilogue = opt_region_def("single_block")
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$template `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"
                       " (`epilogue` $epilogue^)?")

    def verify_(self) -> None:
        if self.epilogue is None:
            return
        block = self.epilogue.block
        if len(self.outputs) != 1 or not 1 <= len(block.args) <= len(self.inputs) + 1:
            raise VerifyException("kernel.launch: an epilogue needs one result and one block "
                                  "argument for it plus one per extra (trailing) input")
        if not isinstance(block.last_op, YieldOp):
            raise VerifyException("kernel.launch: the epilogue must end with kernel.yield")

    @property
    def epilogue_inputs(self) -> tuple[SSAValue, ...]:
        """The trailing operands the epilogue reads (none without an epilogue)."""
        extra = len(self.epilogue.block.args) - 1 if self.epilogue is not None else 0
        return tuple(self.inputs[len(self.inputs) - extra:]) if extra else ()


@irdl_op_definition
class ElementwiseOp(IRDLOperation):
    name = "kernel.elementwise"
    origin = opt_prop_def(ArrayAttr)
    tactic = opt_prop_def(DictionaryAttr)
    inputs = var_operand_def()
    output = result_def()
    body = region_def("single_block")
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "`(` $inputs `)` attr-dict-with-keyword `:` functional-type($inputs, results) $body"
    )

    def verify_(self) -> None:
        block = self.body.block
        if len(block.args) != len(self.inputs):
            raise VerifyException("kernel.elementwise: one block argument per input")
        if not isinstance(block.last_op, YieldOp):
            raise VerifyException("kernel.elementwise: the region must end with kernel.yield")


@irdl_op_definition
class ScalarOp(IRDLOperation):
    """`fn` of scalars: a function of nn's UNARY/BINARY tables, `select` or `cast`."""

    name = "kernel.scalar"
    fn = prop_def(StringAttr)
    alpha = opt_prop_def(Attribute)
    beta = opt_prop_def(Attribute)
    args = var_operand_def()
    result = result_def()
    traits = traits_def(Pure(), HasParent(ElementwiseOp, LaunchOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$fn $args attr-dict `:` functional-type($args, $result)"

    def verify_(self) -> None:
        fn = self.fn.data
        arity = 1 if fn in UNARY else 2 if fn in BINARY else SCALAR_EXTRA.get(fn)
        if arity is None:
            raise VerifyException(f"kernel.scalar: unknown function '{fn}'")
        if len(self.args) != arity:
            raise VerifyException(f"kernel.scalar {fn}: takes {arity} argument(s)")


@irdl_op_definition
class YieldOp(IRDLOperation):
    name = "kernel.yield"
    value = operand_def()
    traits = traits_def(IsTerminator(), HasParent(ElementwiseOp, LaunchOp))
    assembly_format = "$value attr-dict `:` type($value)"


@irdl_op_definition
class ViewOp(IRDLOperation):
    """The input's bytes with the result's shape (row-major, so only the shape changes)."""

    name = "kernel.view"
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"


KERNEL = Dialect("kernel", [LaunchOp, ElementwiseOp, ScalarOp, YieldOp, ViewOp], [])
