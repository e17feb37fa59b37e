"""Values in another float element type, for assign-precision: `ValueConverter` gives a value
in the type an op needs (a constant converted at build time into a new weight or constant, else
one `nn.cast` shared by every user), and `cancel_casts` folds the cast pairs that cancel."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import BFloat16Type, Float16Type, Float32Type, Float64Type
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.nn.base import NNOp, build, like
from ember.dialects.nn.elementwise import CastOp, ConstantOp, FillOp, WeightOp, scalar_attr
from ember.dialects.tensor_types import element_type_of
from ember.dialects.weights import WeightStore
from ember.passes.convert_onnx_to_nn.builder import make_constant, traced_value
from ember.runtime.refit_recipes import Recipe, node

_SUFFIX = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}


def exact(src: Attribute, dst: Attribute) -> bool:
    """Whether every value of `src` converts to `dst` exactly."""
    if src == dst:
        return True
    if isinstance(src, Float16Type | BFloat16Type):
        return isinstance(dst, Float32Type | Float64Type)
    return isinstance(src, Float32Type) and isinstance(dst, Float64Type)


class ValueConverter:
    """Values in other element types, each (value, type) converted once."""

    def __init__(self, store: WeightStore) -> None:
        self.store = store
        self.converted: dict[tuple[SSAValue, Attribute], SSAValue] = {}

    def convert(self, value: SSAValue, element_type: Attribute) -> SSAValue:
        """`value` in `element_type`: a converted constant, or one cast shared by all users."""
        key = (value, element_type)
        if key in self.converted:
            return self.converted[key]
        owner = value.owner
        array, recipe = traced_value(value, self.store) if isinstance(owner, Operation) \
            else (None, None)
        if array is not None:
            new = self._constant(owner, array, recipe, element_type)
        else:
            new = build(CastOp, [value], {"to": element_type})
        if isinstance(owner, Block):
            Rewriter.insert_op(new, InsertPoint.at_start(owner))
        else:
            Rewriter.insert_op(new, InsertPoint.after(owner))
        self.converted[key] = new.results[0]
        return new.results[0]

    def _constant(self, owner: Operation, array: np.ndarray, recipe: Recipe | None,
                  element_type: Attribute) -> NNOp:
        dtype = numpy_dtype(element_type)
        if isinstance(owner, FillOp):
            return build(FillOp, [], {"value": scalar_attr(float(array.reshape(-1)[0]),
                                                           element_type)},
                         result_types=[like(owner.output, element_type=element_type)])
        name = owner.ref.data if isinstance(owner, WeightOp) else "const"
        new = make_constant(np.asarray(array).astype(dtype), self.store,
                            f"{name}.{_SUFFIX.get(str(element_type), str(element_type))}",
                            node("cast", [recipe], dtype=dtype.name))
        new.location = owner.location
        return new


def cancel_casts(block: Block) -> None:
    """Fold `cast(cast(x))` whose first cast is exact into one cast (none when it returns x's
    type), drop casts to the same type, and erase casts and constants nothing reads."""
    for op in list(block.ops):
        if not isinstance(op, CastOp):
            continue
        source = op.input
        while isinstance(source.owner, CastOp) and exact(element_type_of(source.owner.input),
                                                         element_type_of(source)):
            source = source.owner.input
        if element_type_of(source) == op.to:
            op.output.replace_all_uses_with(source)
        elif source is not op.input:
            op.operands[0] = source
    for op in reversed(list(block.ops)):
        if (isinstance(op, CastOp | ConstantOp | WeightOp | FillOp) and op.parent is block
                and not any(r.uses for r in op.results)):
            Rewriter.erase_op(op)


__all__ = ["ValueConverter", "cancel_casts", "exact"]
