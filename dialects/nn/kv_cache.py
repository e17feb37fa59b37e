"""nn.tensor_scatter (ONNX TensorScatter): the KV-cache update of LLM attention, its semantics
the numpy kernel's in runtime/cpu_kernels/kv_cache.py."""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, like, normalize_axis
from ember.dialects.tensor_types import element_type_of
from ember.errors import ShapeError


@irdl_op_definition
class TensorScatterOp(NNOp):
    """`past` with `update` written along `axis` (the sequence axis; not the batch axis 0) at
    each batch sample's write index (`write_indices`, [batch] i64; zeros when absent), modulo
    the cache length in "circular" `mode`. The result has `past`'s type."""

    name = "nn.tensor_scatter"
    past = operand_def()
    update = operand_def()
    write_indices = opt_operand_def()
    axis = prop_def(IntegerAttr)
    mode = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$past `,` $update (`at` $write_indices^ `:` type($write_indices))? "
                       "attr-dict `:` type($past) `,` type($update) `->` type($output)")

    def infer(self) -> list[Attribute]:
        past, update = self.operand_shape(0), self.operand_shape(1)
        if self.mode.data not in ("linear", "circular"):
            raise ShapeError(f"{self.name}: mode must be linear or circular, not "
                             f"'{self.mode.data}'")
        if len(past) != len(update) or len(past) < 2:
            raise ShapeError(f"{self.name}: past {list(past)} and update {list(update)} must "
                             "have one rank of at least 2")
        axis = normalize_axis(self.prop("axis"), len(past), self.name)
        if axis == 0:
            raise ShapeError(f"{self.name}: the sequence axis cannot be the batch axis 0")
        for d, (a, b) in enumerate(zip(past, update, strict=True)):
            if d == axis:
                if isinstance(a, int) and isinstance(b, int) and b > a:
                    raise ShapeError(f"{self.name}: an update of {b} positions does not fit a "
                                     f"cache of {a}")
            elif isinstance(a, int) and isinstance(b, int) and a != b:
                raise ShapeError(f"{self.name}: past {list(past)} and update {list(update)} "
                                 f"differ in dim {d}")
        if element_type_of(self.past) != element_type_of(self.update):
            raise ShapeError(f"{self.name}: past and update must be of one type")
        return [like(self.past)]


OPS = [TensorScatterOp]
