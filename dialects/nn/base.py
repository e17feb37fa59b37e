"""What every `nn` op shares: result types inferred from operands and properties, verified.

An nn op defines `infer()` (its result types, symbolic dims kept symbolic). Its numpy semantics
live once, in the runtime's CPU kernels (`ember.runtime.cpu_kernels.KERNELS`, keyed by the op name
without "nn."): `evaluate()` calls the kernel with `kernel_params()`, the same parameters
convert-nn-to-kernel puts on `kernel.launch`. `build()` makes an op with inferred result types;
the verifier checks that the declared result types agree with inference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from xdsl.dialects.builtin import TensorType, UnrankedTensorType, f32
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import IRDLOperation, ParsePropInAttrDict
from xdsl.utils.exceptions import VerifyException

from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.tensor_types import (
    UNKNOWN,
    Dim,
    Shape,
    element_type_of,
    format_of,
    plan_dims,
    shape_of,
    tensor_type,
)
from ember.errors import ShapeError, SymbolicError
from ember.runtime import symbolic
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cpu_kernels.common import normalize_axis as normalize_axis  # re-exported

_PENDING = UnrankedTensorType(f32)
OpT = TypeVar("OpT", bound="NNOp")


class NNOp(IRDLOperation):
    """Base of the nn ops (properties print in the attribute dictionary)."""

    irdl_options = (ParsePropInAttrDict(),)

    def infer(self) -> list[Attribute]:
        """Result types from operand types and properties (default: as declared)."""
        return [r.type for r in self.results]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Numpy semantics (constant folding, the reference interpreter): the runtime's CPU
        kernel of this op; ops without one (weights) raise."""
        kernel = KERNELS.get(self.name.removeprefix("nn."))
        if kernel is None:
            raise ShapeError(f"{self.name} cannot be evaluated at compile time")
        return kernel(list(inputs), self.kernel_params(inputs))

    def kernel_params(self, inputs: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        """The kernel's params (see `kernel_params`)."""
        return kernel_params(self, inputs)

    def prop(self, name: str, default: Any = None) -> Any:
        attr = self.properties.get(name)
        return default if attr is None else attribute_value(attr)

    def operand_shape(self, index: int) -> Shape:
        shape = shape_of(self.operands[index])
        if shape is None:
            raise ShapeError(f"{self.name}: operand #{index} has unknown rank")
        return shape

    def verify_(self) -> None:
        try:
            inferred = self.infer()
        except ShapeError as e:
            raise VerifyException(str(e)) from None
        for i, (result, want) in enumerate(zip(self.results, inferred, strict=True)):
            if not types_compatible(result.type, want):
                raise VerifyException(
                    f"{self.name}: result #{i} has type {result.type}, but its operands and "
                    f"properties give {want}"
                )


def set_result_types(op: Operation, types: Sequence[Attribute]) -> bool:
    """Give `op`'s results new types; True if any changed."""
    changed = False
    for result, t in zip(op.results, types, strict=True):
        if result.type != t:
            result._type = t  # xDSL has no public setter; results keep their uses
            changed = True
    return changed


def build(cls: type[OpT], operands: Sequence[SSAValue], properties: dict[str, Any] | None = None,
          *, num_results: int = 1, result_types: Sequence[Attribute] | None = None) -> OpT:
    """Make an nn op; its result types are inferred unless given."""
    props = {k: to_attribute(v) for k, v in (properties or {}).items() if v is not None}
    op = cls.create(operands=list(operands), properties=props,
                    result_types=list(result_types or [_PENDING] * num_results))
    if result_types is None:
        set_result_types(op, op.infer())
    return op


def types_compatible(declared: Attribute, inferred: Attribute) -> bool:
    if isinstance(declared, UnrankedTensorType) or isinstance(inferred, UnrankedTensorType):
        return element_type_of(declared) == element_type_of(inferred)
    if not isinstance(declared, TensorType) or not isinstance(inferred, TensorType):
        return declared == inferred
    if declared.element_type != inferred.element_type or format_of(declared) != format_of(inferred):
        return False
    a, b = shape_of(declared), shape_of(inferred)
    if a is None or b is None or len(a) != len(b):
        return False
    return all(x == y or isinstance(x, str) or isinstance(y, str)
               for x, y in zip(a, b, strict=True))


def dtype_name(t: Attribute) -> str:
    """The numpy dtype name of a type's element type (or of an element type)."""
    return numpy_dtype(element_type_of(t)).name


def kernel_params(op: NNOp, inputs: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """What every kernel of `op` gets, as JSON-like data: the op's properties (type properties as
    numpy dtype names), "dynamic" (the present run-time parameter operands of ops with several
    optional ones), in_shapes / in_dtypes / out_shapes / out_dtypes.

    Without `inputs` (a plan) every dim must be static or a product of symbols ("768*N", bound
    at run time), else ShapeError. With `inputs`
    (evaluate) the input shapes and dtypes are the arrays'; result dims are made concrete with
    the symbols the inputs bind, None where still unknown (out_shapes[i] is None if unranked)."""
    params: dict[str, Any] = {}
    for name, attr in op.properties.items():
        if name == "operandSegmentSizes":
            continue
        value = attribute_value(attr)
        if isinstance(value, Attribute):
            value = dtype_name(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        params[name] = value
    present = [n for n in getattr(op, "DYNAMIC", ()) if getattr(op, n) is not None]
    if present:
        params["dynamic"] = present
    if inputs is None:
        def static(v: SSAValue) -> list[Dim]:
            shape = plan_dims(v)
            if shape is None:
                raise ShapeError(f"{op.name} has a shape with an unknown dim ({v.type})")
            return list(shape)

        params["in_shapes"] = [static(v) for v in op.operands]
        params["in_dtypes"] = [dtype_name(v.type) for v in op.operands]
        params["out_shapes"] = [static(v) for v in op.results]
    else:
        arrays = [np.asarray(a) for a in inputs]
        bindings: dict[str, int] = {}
        for v, a in zip(op.operands, arrays, strict=False):
            bindings.update(bind_symbols(shape_of(v), a.shape))
        params["in_shapes"] = [list(a.shape) for a in arrays]
        params["in_dtypes"] = [a.dtype.name for a in arrays]
        outs: list[list[int | None] | None] = []
        for r in op.results:
            shape = shape_of(r)
            outs.append(None if shape is None else
                        [d if d >= 0 else None for d in concrete_shape(shape, bindings)])
        params["out_shapes"] = outs
    params["out_dtypes"] = [dtype_name(v.type) for v in op.results]
    return params


def concrete_shape(shape: Sequence[Dim], bindings: dict[str, int]) -> list[int]:
    """Dims of a (possibly symbolic) shape made concrete with symbol values seen at run time;
    a dim that stays unknown is -1 (numpy's reshape infers it)."""
    return [symbolic.dim_value(d, bindings) if all(
        s in bindings for s in symbolic.dim_symbols(d)) else -1 for d in shape]


def bind_symbols(shape: Sequence[Dim] | None, actual: Sequence[int]) -> dict[str, int]:
    """Symbol -> value for the plain symbols of `shape` given the actual dims."""
    if shape is None:
        return {}
    return {d: int(a) for d, a in zip(shape, actual, strict=False)
            if isinstance(d, str) and re.fullmatch(r"[^*?]+", d)}


# -- dims ---------------------------------------------------------------------------------------

def dims_equal(a: Dim, b: Dim) -> bool:
    return a == b and a != UNKNOWN


def dim_product(dims: Sequence[Dim]) -> Dim:
    """Product of dims (`ember.runtime.symbolic.dim_product`): an int when all are static, else
    the canonical symbolic product; 0 where a dim is 0, else '?' where one is unknown."""
    if any(isinstance(d, int | np.integer) and d == 0 for d in dims):
        return 0
    if any(_unknown(d) for d in dims):
        return UNKNOWN
    return symbolic.dim_product(dims)


def dim_quotient(total: Dim, part: Dim) -> Dim:
    """total / part where it is exact for every value of the symbols (they cancel), else '?'."""
    if _unknown(total) or _unknown(part):
        return UNKNOWN
    try:
        return symbolic.dim_quotient(total, part)
    except SymbolicError:
        return UNKNOWN


def _unknown(d: Any) -> bool:
    """'?' (or a product naming it), or no dim at all (a float from a folded Mul)."""
    if isinstance(d, str):
        return UNKNOWN in symbolic.dim_symbols(d)
    return not isinstance(d, int | np.integer)


def broadcast_shapes(*shapes: Shape, op: str = "") -> Shape:
    """Multidirectional (numpy) broadcasting, symbols kept where they decide a dim."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        result: Dim = 1
        for d in dims:
            if d == 1 or d == result:
                continue
            if result == 1:
                result = d
            elif isinstance(d, int) and isinstance(result, int):
                raise ShapeError(f"{op}: shapes {[list(s) for s in shapes]} do not broadcast")
            elif isinstance(result, str) and isinstance(d, int):
                result = d
            elif isinstance(result, str) and isinstance(d, str):
                result = UNKNOWN
        out.append(result)
    return tuple(out)


def like(value: SSAValue | Attribute, shape: Sequence[Dim] | None = None,
         element_type: Attribute | None = None) -> Attribute:
    """A tensor type like `value`'s with another shape and/or element type."""
    t = value.type if isinstance(value, SSAValue) else value
    return tensor_type(
        shape_of(t) if shape is None else tuple(shape),
        element_type or element_type_of(t),
        format_of(t),
    )
