"""convert-nn-to-kernel: each nn op becomes the kernel that runs it.

After this pass the function holds only `kernel.launch`, `kernel.elementwise`, `kernel.view`
and the data ops `nn.weight` / `nn.constant`. Elementwise nn ops (unary, binary, select, cast)
become `kernel.elementwise` with a one-op scalar region; `nn.reshape` becomes `kernel.view`; every
other nn op becomes `kernel.launch "<op>"` whose params are the op's properties plus the static
shapes and dtypes of its operands and results (so assign-precision's `tf32` marker on a conv /
matmul / einsum / attention becomes `params["tf32"] = true`, which the CUDA templates read).
Every dim must be static or a product of named symbols (an optimization profile's dynamic input
dims, whose values kernels take at run time); an unknown dim is an error naming the op.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, Region
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ember.dialects.attributes import to_attribute
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ScalarOp, ViewOp, YieldOp
from ember.dialects.nn.base import NNOp, dtype_name, kernel_params
from ember.dialects.nn.elementwise import (
    BinaryOp,
    CastOp,
    ConstantOp,
    FillOp,
    SelectOp,
    UnaryOp,
    WeightOp,
)
from ember.dialects.nn.movement import ReshapeOp
from ember.dialects.origin import origin_of
from ember.dialects.tensor_types import element_type_of, plan_dims
from ember.errors import PassError

__all__ = ["ConvertNNToKernel", "dtype_name", "kernel_params"]  # kernel_params: nn.base's

_DATA = (ConstantOp, WeightOp)
# ops whose extra operands are run-time values of what are properties in their static form
def _static(op: NNOp, value) -> tuple:
    shape = plan_dims(value)
    if shape is None:
        params = [n for n in getattr(op, "DYNAMIC", ()) if getattr(op, n) is not None]
        if params:
            raise PassError(f"convert-nn-to-kernel: {op.name}{_where(op)} has a shape with an "
                            f"unknown dim ({value.type}): its run-time parameters "
                            f"({', '.join(params)}) decide it; declare the result's shape in "
                            "the model (a graph output's or value_info's type) or make them "
                            "constants")
        raise PassError(f"convert-nn-to-kernel: {op.name}{_where(op)} has a shape with an "
                        f"unknown dim ({value.type}); give the model static input shapes or an "
                        "optimization profile (a symbolic dim must be a named input dim, or "
                        "a product of them)")
    return shape


def _where(op: NNOp) -> str:
    names = origin_of(op)
    return f" (node {', '.join(repr(n) for n in names)})" if names else ""


def _origin(op: NNOp) -> dict[str, Attribute]:
    names = origin_of(op)
    return {"origin": ArrayAttr([StringAttr(n) for n in names])} if names else {}


def _scalar_fn(op: NNOp) -> tuple[str, dict[str, Attribute]]:
    if isinstance(op, UnaryOp | BinaryOp):
        props = {k: op.properties[k] for k in ("alpha", "beta") if k in op.properties}
        return op.fn.data, props
    if isinstance(op, SelectOp):
        return "select", {}
    return ("saturate_cast" if op.properties.get("saturate") else "cast"), {}


def _elementwise(op: NNOp) -> ElementwiseOp:
    types = [element_type_of(v) for v in op.operands]
    block = Block(arg_types=types)
    fn, props = _scalar_fn(op)
    scalar = ScalarOp.create(operands=list(block.args),
                             result_types=[element_type_of(op.results[0])],
                             properties={"fn": StringAttr(fn), **props})
    block.add_ops([scalar, YieldOp.create(operands=[scalar.result])])
    return ElementwiseOp.create(operands=list(op.operands), result_types=[op.results[0].type],
                                regions=[Region(block)], properties=_origin(op))


class ConvertNNToKernel(ModulePass):
    name = "convert-nn-to-kernel"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in list(module.walk()):
            if not isinstance(op, NNOp) or isinstance(op, _DATA):
                continue
            for v in (*op.operands, *op.results):
                _static(op, v)
            if isinstance(op, UnaryOp | BinaryOp | SelectOp | CastOp):
                new = _elementwise(op)
            elif isinstance(op, ReshapeOp) and op.shape is None:
                new = ViewOp.create(operands=[op.input], result_types=[op.output.type])
            elif isinstance(op, FillOp) and op.shape is None:
                continue  # a constant: the plan stores its one value
            else:
                params = DictionaryAttr({k: to_attribute(v) for k, v in op.kernel_params().items()})
                new = LaunchOp.create(
                    operands=list(op.operands), result_types=[r.type for r in op.results],
                    properties={"template": StringAttr(op.name.removeprefix("nn.")),
                                "params": params, **_origin(op)})
            new.location = op.location
            Rewriter.replace_op(op, new)
