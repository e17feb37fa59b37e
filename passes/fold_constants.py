"""fold-constants: evaluate at compile time what does not depend on the network's inputs.

Walks each function forward once. Every nn op first gets its result types re-inferred (so shapes
refined upstream flow down); an op whose operands are all constants is replaced by its value
(small values inline as `nn.constant`, larger ones as new weights in the store). Shape arithmetic
is folded symbolically too: `nn.shape_of` of a tensor with symbolic dims yields known dims, and
Gather/Slice/Concat/Reshape/Cast and integer arithmetic on them are tracked, so the
Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of PyTorch exports end as a static
`nn.reshape` (its target may keep symbols, e.g. `?x768` with `["N"]`).

Ops that take run-time parameters as operands (`nn.reshape`/`nn.expand`/`nn.fill` shapes,
`nn.slice`, `nn.pad`, `nn.tile`, `nn.resize`, `nn.squeeze`/`nn.unsqueeze`, `nn.trilu`,
`nn.cumsum`, `nn.reduce` axes) become their static forms once those operands are known: each such
op's `static_form(known)` says what it becomes. After this pass no such op whose parameter
operands are known (as constants, or as dims for shapes) keeps them. Dead producers are left for
`dce`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.nn.base import (
    NNOp,
    build,
    dim_product,
    dim_quotient,
    like,
    normalize_axis,
    set_result_types,
)
from ember.dialects.nn.elementwise import (
    BinaryOp,
    CastOp,
    ConstantOp,
    FillOp,
    SelectOp,
    WeightOp,
)
from ember.dialects.nn.movement import GatherOp, RangeOp, ShapeOfOp, SliceOp, known_ints
from ember.dialects.nn.reduction import ReduceOp
from ember.dialects.origin import origin_of
from ember.dialects.symbol_ranges import symbol_maxima
from ember.dialects.tensor_types import UNKNOWN, element_type_of, shape_of, tensor_type
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import PassError, ShapeError
from ember.passes.convert_onnx_to_nn import update_function_type
from ember.passes.convert_onnx_to_nn.builder import (
    constant_value,
    evaluated_recipe,
    make_constant,
    traced_value,
)
from ember.runtime.symbolic import dim_value, is_monomial_over

# Ops that only move elements: evaluating them on an object array of dims moves the dims.
_STRUCTURAL = {"nn.gather", "nn.slice", "nn.concat", "nn.reshape", "nn.transpose"}


@dataclass(frozen=True)
class FoldConstants(ModulePass):
    name = "fold-constants"

    # Do not materialize a folded value larger than this many elements.
    max_elements: int = 1 << 26

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for fn in list(module.walk()):
            if isinstance(fn, func.FuncOp):
                _Folder(store, self.max_elements, symbol_maxima(module)).run(fn)
                update_function_type(fn)


class _Folder:
    def __init__(self, store: WeightStore, max_elements: int,
                 maxima: dict[str, int] | None = None) -> None:
        self.store = store
        self.max_elements = max_elements
        self.maxima = maxima or {}
        self.symbolic: dict[SSAValue, np.ndarray] = {}  # object arrays of dims (int | str)

    def run(self, fn: func.FuncOp) -> None:
        for op in list(fn.body.block.ops):
            if not isinstance(op, NNOp):
                continue
            try:
                self._visit(op)
            except ShapeError as e:
                raise PassError(f"fold-constants: {op.name}: {e}") from None

    def _visit(self, op: NNOp) -> None:
        set_result_types(op, op.infer())
        replacement = self._static_form(op)
        if replacement is not None:
            op = self._replace(op, replacement)
        if isinstance(op, ConstantOp | WeightOp) or (isinstance(op, FillOp) and op.shape is None):
            return
        traced = [traced_value(v, self.store) for v in op.operands]
        values = [a for a, _ in traced]
        if all(v is not None for v in values) and self._small_enough(op):
            try:
                results = op.evaluate(values)  # type: ignore[arg-type]
            except ShapeError:
                return
            except (ValueError, TypeError, IndexError, FloatingPointError) as e:
                raise PassError(f"fold-constants: evaluating {op.name} failed: {e}") from None
            made = [evaluated_recipe(op, values, [r for _, r in traced], i)
                    if self.store.refit is not None else None for i in range(len(results))]
            new = [make_constant(np.asarray(r), self.store, self._name(op), recipe)
                   for r, recipe in zip(results, made, strict=True)]
            for n in new:
                Rewriter.insert_op(n, InsertPoint.before(op))
            for old, n in zip(op.results, new, strict=True):
                old.replace_all_uses_with(n.results[0])
            Rewriter.erase_op(op)
            return
        self._track_symbolic(op)

    # -- static forms --------------------------------------------------------------------------
    def _known(self, value: SSAValue, bake: bool = True) -> np.ndarray | None:
        # bake=False: the caller bakes what it absorbs itself (a REFIT build's bookkeeping)
        array = constant_value(value, self.store) if bake else traced_value(value, self.store)[0]
        return array if array is not None else self.symbolic.get(value)

    def _static_form(self, op: NNOp) -> Operation | None:
        method = getattr(op, "static_form", None)
        other = _STATIC_FORMS.get(type(op))
        if (method is None and other is None) or not op.operands:
            return None
        known = [self._known(v, bake=False) for v in op.operands]
        new = method(known) if method is not None else other(op, known)  # type: ignore[misc]
        if new is None and isinstance(op, SliceOp):
            new = self._symbolic_slice(op, known)
        if new is not None:  # the operands the static form no longer reads are in its params
            for v in op.operands:
                if v not in new.operands:
                    constant_value(v, self.store)
        return new

    def _symbolic_slice(self, op: SliceOp, known: list) -> NNOp | None:
        """x[..., 0:n] along one axis with n a symbolic dim (`buffer[:, :seq_len]` under a
        dynamic sequence): a gather of x at Range(0, n) (length n), since a static slice's ends
        are numbers. ONNX clamps the end to the dim; the gather reads positions below n, so the
        profile must keep n within the dim: checked here against the profile max (`ember.symbols`)
        (a module without it, e.g. in ember-opt, is rewritten unchecked; plans come from the
        builder)."""
        values = op.by_operand(known)
        starts, ends = known_ints(values.get("dyn_starts")), values.get("dyn_ends")
        axes = known_ints(values.get("dyn_axes")) if op.dyn_axes is not None else [0]
        steps = known_ints(values.get("dyn_steps")) if op.dyn_steps is not None else [1]
        if starts != [0] or steps != [1] or axes is None or len(axes) != 1 or ends is None:
            return None
        end = np.asarray(ends, dtype=object).reshape(-1).tolist()
        shape = op.operand_shape(0)
        axis = axes[0] + len(shape) if axes[0] < 0 else axes[0]
        if len(end) != 1 or not isinstance(end[0], str) or UNKNOWN in end[0] \
                or not 0 <= axis < len(shape) or not isinstance(shape[axis], int):
            return None
        if is_monomial_over(end[0], self.maxima):
            longest = dim_value(end[0], self.maxima)
            if longest > shape[axis]:
                raise PassError(
                    f"fold-constants: {op.name} ({', '.join(origin_of(op)) or 'slice'}) slices "
                    f"0:{end[0]} of a dim of {shape[axis]}, and the profile lets {end[0]} reach "
                    f"{longest}: ONNX would clamp the end there; keep the profile's max at "
                    f"most {shape[axis]}")
        zero, one = (make_constant(np.array(v, np.int64), self.store) for v in (0, 1))
        positions = build(RangeOp, [zero.results[0], zero.results[0], one.results[0]],
                          result_types=[tensor_type([end[0]], i64)])
        for new in (zero, one, positions):
            Rewriter.insert_op(new, InsertPoint.before(op))
        return build(GatherOp, [op.input, positions.output], {"axis": axis})

    def _replace(self, op: NNOp, new: Operation) -> NNOp:
        Rewriter.insert_op(new, InsertPoint.before(op))
        for old, n in zip(op.results, new.results, strict=True):
            old.replace_all_uses_with(n)
        Rewriter.erase_op(op)
        return new  # type: ignore[return-value]

    # -- symbolic shapes -----------------------------------------------------------------------
    def _track_symbolic(self, op: NNOp) -> None:
        result: np.ndarray | None = None
        if isinstance(op, ShapeOfOp):
            result = np.array(op.dims(), dtype=object)
        elif op.name in _STRUCTURAL or isinstance(op, CastOp):
            if not any(v in self.symbolic for v in op.operands):
                return
            inputs = [self._known(v) for v in op.operands]
            if any(v is None for v in inputs):
                return
            if isinstance(op, CastOp):
                result = inputs[0]
            else:
                try:
                    result = op.evaluate(inputs)[0]
                except (ShapeError, ValueError, TypeError, IndexError):
                    return
        elif isinstance(op, BinaryOp):
            result = self._symbolic_arith(op)
        elif isinstance(op, SelectOp):
            result = self._symbolic_select(op)
        if result is None:
            return
        result = np.asarray(result, dtype=object)
        if all(isinstance(d, int | np.integer) for d in result.reshape(-1)):
            dtype = numpy_dtype(element_type_of(op.results[0]))
            const = make_constant(result.astype(dtype), self.store)
            Rewriter.insert_op(const, InsertPoint.before(op))
            op.results[0].replace_all_uses_with(const.results[0])
            Rewriter.erase_op(op)
            return
        self.symbolic[op.results[0]] = result

    def _symbolic_select(self, op: SelectOp) -> np.ndarray | None:
        """Where(cond, a, b) with a constant cond over dims (PyTorch's expand: a -1 in the
        target shape becomes 1)."""
        if op.operands[0] in self.symbolic or not any(v in self.symbolic
                                                      for v in op.operands[1:]):
            return None
        cond, a, b = (self._known(v) for v in op.operands)
        if cond is None or a is None or b is None:
            return None
        return np.where(np.asarray(cond, dtype=bool), np.asarray(a, dtype=object),
                        np.asarray(b, dtype=object))

    def _symbolic_arith(self, op: BinaryOp) -> np.ndarray | None:
        fn = op.fn.data
        if fn == "eq" and any(v in self.symbolic for v in op.operands):
            return self._symbolic_equal(op)
        if fn not in ("mul", "div", "add", "sub") or not any(v in self.symbolic
                                                              for v in op.operands):
            return None
        a, b = (self._known(v) for v in op.operands)
        if a is None or b is None:
            return None
        a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))

        def one(x, y):
            x = int(x) if isinstance(x, np.integer) else x
            y = int(y) if isinstance(y, np.integer) else y
            if isinstance(x, int) and isinstance(y, int):
                return {"mul": x * y, "div": int(x / y) if y else UNKNOWN, "add": x + y,
                        "sub": x - y}[fn]
            if fn == "mul":
                return dim_product([x, y])
            if fn == "div":
                return dim_quotient(x, y)
            return UNKNOWN

        out = np.empty(a.shape, dtype=object)
        for idx in np.ndindex(a.shape):
            out[idx] = one(a[idx], b[idx])
        return out

    def _symbolic_equal(self, op: BinaryOp) -> np.ndarray | None:
        """dims == dims where the answer holds for every value of the symbols (a symbolic dim
        is at least 1): equal symbols, or a symbol against a number below 1; else unknown."""
        a, b = (self._known(v) for v in op.operands)
        if a is None or b is None:
            return None
        a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        out = np.empty(a.shape, dtype=bool)
        for idx in np.ndindex(a.shape):
            x, y = (int(v) if isinstance(v, np.integer) else v for v in (a[idx], b[idx]))
            if isinstance(x, int) and isinstance(y, int):
                out[idx] = x == y
            elif isinstance(x, str) and isinstance(y, str) and x == y and x != UNKNOWN:
                out[idx] = True
            elif isinstance(x, int) and x < 1 or isinstance(y, int) and y < 1:
                out[idx] = False
            else:
                return None
        return out

    # -- helpers -------------------------------------------------------------------------------
    def _small_enough(self, op: NNOp) -> bool:
        """Whether to fold: not a result with a named symbolic dim (its size is the network
        input's, so it is no constant: an expand of a constant to [N, 4]), nor one too big."""
        for r in op.results:
            shape = shape_of(r)
            if shape is not None and any(isinstance(d, str) and UNKNOWN not in d
                                         for d in shape):
                return False
        for r in op.results:
            shape = shape_of(r)
            if shape is None or any(isinstance(d, str) for d in shape):
                return True  # evaluation decides; sizes come from constant operands
            if dim_product(shape) > self.max_elements:
                return False
        return True

    def _name(self, op: NNOp) -> str:
        for v in op.operands:
            if isinstance(v.owner, WeightOp):
                return f"{v.owner.ref.data}.folded"
        return "folded"



# -- static forms of ops defined elsewhere ---------------------------------------------------------

def _fill_static_form(op: FillOp, known: list) -> NNOp | None:
    if op.shape is None or known[0] is None:
        return None
    dims = [int(d) if isinstance(d, np.integer) else d for d in known[0].reshape(-1).tolist()]
    return build(FillOp, [], {"value": op.value}, result_types=[like(op.output, dims)])


def _reduce_static_form(op: ReduceOp, known: list) -> NNOp | None:
    axes = None if op.dynamic_axes is None else known_ints(known[1])
    if axes is None:
        return None
    rank = len(op.operand_shape(0))
    axes = sorted({normalize_axis(a, rank, op.name) for a in axes})
    return build(ReduceOp, [op.input], {"fn": op.fn, "axes": axes, "keepdims": op.keepdims})


def _range_static_form(op: RangeOp, known: list) -> NNOp | None:
    """Range(0, n, 1) with n a symbolic dim (`arange(x.size(0))` under a dynamic batch): its
    length is n. The static-length form reads start and delta only; its limit operand is the
    start (the run-time n is not a tensor), its result type says the length."""
    start, limit, delta = known
    if start is None or limit is None or delta is None or op.limit is op.start:
        return None
    dims = [d for d in np.asarray(limit, dtype=object).reshape(-1).tolist()]
    if len(dims) != 1 or not isinstance(dims[0], str) or UNKNOWN in dims[0]:
        return None
    first, step = (np.asarray(v).reshape(-1) for v in (start, delta))
    if first.size != 1 or step.size != 1 or first[0] != 0 or step[0] != 1:
        return None
    return build(RangeOp, [op.start, op.start, op.delta],
                 result_types=[like(op.output, [dims[0]])])


_STATIC_FORMS = {FillOp: _fill_static_form, ReduceOp: _reduce_static_form,
                 RangeOp: _range_static_form}
