"""nn.assert (TensorRT's IAssertionLayer): a condition the model assumes of its run-time values,
checked when the plan runs (every element true, else an InputError with `message`). It has no
result and no Pure trait, so dead-code elimination keeps it. Legalizers add one where a
run-time input must agree with a shape the plan was built for (a declared result shape)."""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, prop_def

from ember.dialects.nn.base import NNOp
from ember.dialects.tensor_types import element_type_of
from ember.errors import ShapeError


@irdl_op_definition
class AssertOp(NNOp):
    """Every element of the bool `condition` must be true when the plan runs."""

    name = "nn.assert"
    condition = operand_def()
    message = prop_def(StringAttr)
    assembly_format = "$condition $message attr-dict `:` type($condition)"

    def infer(self) -> list[Attribute]:
        if str(element_type_of(self.condition)) != "i1":
            raise ShapeError(f"{self.name}: the condition must be bool, not "
                             f"{element_type_of(self.condition)}")
        return []


OPS = [AssertOp]
