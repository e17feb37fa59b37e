"""cancel-requantize: an int8 value dequantized, passed through a ReLU (or nothing) and quantized
again at the same scale is that int8 value's ReLU (or itself): the division, the multiply and
the rounding's work go.

A QDQ model from onnxruntime's quantizer puts a QuantizeLinear / DequantizeLinear pair on every
activation, so a conv followed by Relu becomes, once fold-qdq and fuse-epilogues have run, one
epilogue region ending in

    q = cast(clip(round(v / s)))          quantize the conv's output (int8)
    r = round(relu(cast(q) * s) / s)      dequantize, ReLU, quantize at the same scale s

and `round(relu(q * s) / s)` is `relu(q)` for every int8 q and every positive normal s: q * s
and the division each round by at most half an ulp, so the quotient is within a few ulps of the
integer relu(q) (|q| <= 255: far less than the 0.5 the rounding forgives), and relu(q) * s is
+0 exactly where relu(q) is. The rewrite is exact: results are bit for bit what they were.

A `clip(lo, hi)` in the ReLU's place (MobileNetV2's ReLU6: DQ -> Clip(0, 6) -> Q) is not
exact by that argument (6 / s need not be an integer), so it is decided by evaluating: for a
one-value scale, every value q of the integer type goes through the region's own float
arithmetic (q * s, the clip, the division, the rounding; numpy's IEEE float32 or float64 is the
CPU executor's and the kernels' arithmetic, and the kernels' division rounds to the same
integer: quantize_c), and where the results are clip(q, A, B) for two integers A <= B the
chain becomes that clip of cast(q): bit for bit the same results again.

After this pass no scalar region (a `kernel.elementwise` body or a launch's epilogue) has a
`round` of `div(x, s)` where x is `mul(cast(q), s)` or `relu` of it, q of an integer type of at
most 16 bits, and s the same operand both times, a constant whose every value is a positive
float in [2^-100, 2^100] (no underflow or overflow in q * s), the arithmetic in float32 or
float64 (in float16 q * s may overflow, in bfloat16 the quotient may round to the next
integer), s no weight a REFIT build could change. The round's users read
`cast(q)` (or a new `relu` of it) instead; ops left without users are erased. Runs after
fuse-epilogues (the pair is inside one region only once the kernels have fused).
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerType,
    ModuleOp,
    StringAttr,
    f64,
)
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ScalarOp, ViewOp
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.weights import weights_of
from ember.passes.convert_onnx_to_nn.builder import traced_value

SCALE_RANGE = (2.0 ** -100, 2.0 ** 100)  # q * s and its quotient by s stay normal floats
FLOATS = (Float32Type, Float64Type)  # the arithmetic's types where the identity is exact
INT_BITS = 16  # |q| < 2^16: the quotient is far closer than 0.5 to the integer


def _scalar(value: SSAValue, fn: str) -> ScalarOp | None:
    op = value.owner
    return op if isinstance(op, ScalarOp) and op.fn.data == fn else None


def region_operands(region_op: Operation) -> list[SSAValue | None]:
    """The value each argument of `region_op`'s block reads (None: the launch's own result)."""
    if isinstance(region_op, ElementwiseOp):
        return list(region_op.inputs)
    own = len(attribute_value(region_op.params)["in_shapes"])
    return [None, *region_op.inputs[own:]]


def region_constant(value: SSAValue | None, store) -> np.ndarray | None:
    """The constant `value` reads through views, or None (none, or a weight a REFIT build may
    change)."""
    while value is not None and isinstance(value.owner, ViewOp):
        value = value.owner.input
    if value is None or store.refit is not None and isinstance(value.owner, WeightOp):
        return None
    return traced_value(value, store)[0]


def _scale_ok(value: SSAValue | None, store) -> bool:
    """Whether `value` is a constant of positive floats within `SCALE_RANGE` (not a weight a
    REFIT build may change)."""
    array = region_constant(value, store)
    if array is None or array.dtype.kind != "f" or array.size == 0:
        return False
    array = np.asarray(array, np.float64)
    return bool(np.all((array >= SCALE_RANGE[0]) & (array <= SCALE_RANGE[1])))


def _integer_cast(value: SSAValue) -> ScalarOp | None:
    """`value`'s `cast` op where it converts an integer of at most INT_BITS bits."""
    cast = _scalar(value, "cast")
    if cast is None:
        return None
    source = cast.args[0].type
    return cast if isinstance(source, IntegerType) and source.width.data <= INT_BITS else None


def _cancel(block: Block, operands: list[SSAValue | None], store) -> None:
    for rnd in [op for op in block.ops if isinstance(op, ScalarOp) and op.fn.data == "round"]:
        div = _scalar(rnd.args[0], "div")
        if div is None or not isinstance(div.args[1], BlockArgument):
            continue
        scale = div.args[1]
        middle = _scalar(div.args[0], "relu") or _scalar(div.args[0], "clip")
        mul = _scalar(middle.args[0] if middle else div.args[0], "mul")
        if mul is None or mul.args[1] is not scale:
            continue
        cast = _integer_cast(mul.args[0])
        arithmetic = [op.result for op in (cast, mul, middle, div, rnd) if op is not None]
        if cast is None or any(not isinstance(v.type, FLOATS) for v in arithmetic) \
                or not _scale_ok(operands[scale.index], store):
            continue
        props = {"fn": StringAttr("relu")} if middle is not None else None
        if middle is not None and middle.fn.data == "clip":
            bounds = _clip_bounds(cast, middle, operands[scale.index], store)
            if bounds is None:
                continue
            props = {"fn": StringAttr("clip"), "alpha": FloatAttr(bounds[0], f64),
                     "beta": FloatAttr(bounds[1], f64)}
        value = cast.result
        if props is not None:
            new = ScalarOp.create(operands=[value], result_types=[value.type], properties=props)
            Rewriter.insert_op(new, InsertPoint.before(rnd))
            value = new.result
        rnd.result.replace_all_uses_with(value)
        for dead in (rnd, div, middle, mul):
            if dead is not None and not dead.result.uses:
                Rewriter.erase_op(dead)


def _clip_bounds(cast: ScalarOp, clip: ScalarOp, scale: SSAValue | None, store
                 ) -> tuple[float, float] | None:
    """`clip_bounds` of a region's cast, clip and scale operand (None where the scale has
    more than one value or the clip's bounds are not constants)."""
    array = region_constant(scale, store)
    lo, hi = (attribute_value(a) if a is not None else None for a in (clip.alpha, clip.beta))
    if array is None or array.size != 1 or not all(isinstance(v, float) for v in (lo, hi)):
        return None
    width = cast.args[0].type
    unsigned = width.signedness.data.name == "UNSIGNED"
    return clip_bounds(np.dtype(f"{'u' if unsigned else ''}int{width.width.data}"),
                       np.dtype(np.float32 if isinstance(clip.result.type, Float32Type)
                                else np.float64),
                       float(np.asarray(array).reshape(())), lo, hi)


def clip_bounds(int_dtype: np.dtype, float_dtype: np.dtype, scale: float, lo: float,
                hi: float) -> tuple[float, float] | None:
    """(A, B) where round(clip(q * s, lo, hi) / s), computed in `float_dtype` (IEEE, as the CPU
    executor and the kernels do), is clip(q, A, B) for every value q of `int_dtype`; else None."""
    info = np.iinfo(int_dtype)
    q = np.arange(info.min, info.max + 1, dtype=np.int64)
    s = float_dtype.type(scale)
    with np.errstate(all="ignore"):
        got = np.rint(np.clip(q.astype(float_dtype) * s, float_dtype.type(lo),
                              float_dtype.type(hi)) / s)
    low, high = float(got[0]), float(got[-1])
    if low > high or not np.array_equal(got, np.clip(q, low, high).astype(float_dtype)):
        return None
    return low, high


def scalar_regions(module: ModuleOp) -> list[tuple[Block, list[SSAValue | None]]]:
    """Each scalar region of `module` (a `kernel.elementwise` body, a launch's epilogue) with
    the values its block arguments read (`region_operands`)."""
    out = []
    for op in module.walk():
        if isinstance(op, ElementwiseOp):
            out.append((op.body.block, region_operands(op)))
        elif isinstance(op, LaunchOp) and op.epilogue is not None:
            out.append((op.epilogue.block, region_operands(op)))
    return out


class CancelRequantize(ModulePass):
    name = "cancel-requantize"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for block, operands in scalar_regions(module):
            _cancel(block, operands, store)
