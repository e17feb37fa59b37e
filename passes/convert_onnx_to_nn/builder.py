"""NNBuilder: what a legalizer uses to make nn ops in place of one ONNX node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.constants import dense_from_numpy, dense_to_numpy
from ember.dialects.dtypes import element_type_from_numpy, numpy_dtype
from ember.dialects.nn.base import NNOp, OpT, build, like, set_result_types
from ember.dialects.nn.elementwise import (
    BinaryOp,
    CastOp,
    ConstantOp,
    FillOp,
    UnaryOp,
    WeightOp,
)
from ember.dialects.onnx import OnnxOp
from ember.dialects.origin import set_origin
from ember.dialects.tensor_types import element_type_of, shape_of, static_shape, tensor_type
from ember.dialects.weights import WeightStore
from ember.errors import EmberError, ShapeError, UnsupportedError
from ember.runtime import refit_recipes as recipes
from ember.runtime.refit_recipes import Recipe

# Constants with more elements than this are kept in the weight store, not inline.
INLINE_LIMIT = 16
# Ops on constants with at most this many elements are evaluated while legalizing.
FOLD_LIMIT = 4096


def constant_value(value: SSAValue, store: WeightStore) -> np.ndarray | None:
    """The numpy value of an nn constant, weight or static fill; None if not a constant. In a
    REFIT build the value's initializers count as baked into the plan (the caller keeps no
    recipe of what it makes of them): folds that refit can redo read with `traced_value`."""
    if store.refit is not None and isinstance(value.owner, WeightOp):
        store.refit.bake(value.owner.ref.data)
    return _value(value, store)


def traced_value(value: SSAValue, store: WeightStore) -> tuple[np.ndarray | None, Recipe | None]:
    """The value (as `constant_value`) and, in a REFIT build, its refit recipe (None where it
    has none, or in other builds). The caller records a recipe for whatever it makes of it."""
    array = _value(value, store)
    if array is None or store.refit is None:
        return array, None
    if isinstance(value.owner, WeightOp):
        return array, store.refit.recipes.get(value.owner.ref.data)
    return array, recipes.value(array)


def evaluated_recipe(op: NNOp, arrays: Sequence[np.ndarray], args: Sequence[Recipe | None],
                     output: int = 0) -> Recipe:
    """The recipe of `op.evaluate(arrays)[output]` (constant folding) from its operands'."""
    if type(op).evaluate is not NNOp.evaluate:  # not the runtime's kernel: not replayable
        return recipes.opaque(list(args))
    return recipes.node("kernel", list(args), kernel=op.name.removeprefix("nn."),
                        params=op.kernel_params(arrays), output=output)


def _value(value: SSAValue, store: WeightStore) -> np.ndarray | None:
    op = value.owner
    if isinstance(op, ConstantOp):
        return dense_to_numpy(op.value)
    if isinstance(op, WeightOp):
        return store[op.ref.data] if op.ref.data in store else None
    if isinstance(op, FillOp) and op.shape is None and static_shape(op.output) is not None:
        return op.evaluate([])[0]
    return None


def make_constant(array: np.ndarray, store: WeightStore, name: str = "const",
                  recipe: Recipe | None = None) -> Operation:
    """An `nn.constant` for a small array, else an `nn.weight` of a new store entry. `recipe`:
    how the array was made from initializers (runtime/refit_recipes.py); a REFIT build keeps it
    with the entry, which is then a weight whatever its size (so refit can find it)."""
    array = np.asarray(array)
    if store.refit is not None and recipes.leaves(recipe) and recipes.replayable(recipe):
        ref = store.add(name, array)
        record_recipe(store, ref, recipe)
        return build(WeightOp, [], {"ref": ref},
                     result_types=[tensor_type(array.shape, element_type_from_numpy(array.dtype))])
    record_recipe(store, None, recipe)
    if array.size <= INLINE_LIMIT:
        return build(ConstantOp, [], {"value": dense_from_numpy(array)})
    ref = store.add(name, array)
    return build(WeightOp, [], {"ref": ref},
                 result_types=[tensor_type(array.shape, element_type_from_numpy(array.dtype))])


def record_recipe(store: WeightStore, ref: str | None, recipe: Recipe | None) -> None:
    """In a REFIT build, keep the recipe of the store entry `ref`, made from initializers; one
    that cannot be replayed (or an entry that is no weight, `ref` None) bakes its initializers
    into the plan instead. Nothing in other builds."""
    trace = store.refit
    if trace is None:
        return
    if ref is not None and recipes.leaves(recipe) and recipes.replayable(recipe):
        trace.recipes[ref] = recipe
    else:
        trace.bake_recipe(recipe)


def weight_name(value: SSAValue, fallback: str = "const") -> str:
    """The store name of the weight `value` reads (to name weights derived from it), else
    `fallback`."""
    return value.owner.ref.data if isinstance(value.owner, WeightOp) else fallback


def insert_before(op: Operation, before: Operation) -> Operation:
    """Insert `op` before `before`; returns `op`."""
    Rewriter.insert_op(op, InsertPoint.before(before))
    return op


class NNBuilder:
    """Inserts nn ops before `node`; errors name the node."""

    def __init__(self, node: OnnxOp, store: WeightStore) -> None:
        self.node = node
        self.store = store

    @property
    def opset(self) -> int:
        """The model's default-domain opset (`onnx.opset` on the module). One op class serves
        every opset where the schema's signature did not change, so its SINCE_VERSION is not it."""
        parent = self.node.parent_op()
        while parent is not None:
            attr = parent.attributes.get("onnx.opset")
            if isinstance(attr, IntegerAttr):
                return attr.value.data
            parent = parent.parent_op()
        return self.node.SINCE_VERSION

    def _module(self) -> ModuleOp | None:
        op = self.node.parent_op()
        while op is not None and not isinstance(op, ModuleOp):
            op = op.parent_op()
        return op

    def data_symbol(self, prefix: str, bound: int) -> str:
        """A new data-dependent symbol (dialects/symbol_ranges.py) of this upper bound, recorded
        on the module; its name."""
        from ember.dialects.symbol_ranges import add_data_symbol

        module = self._module()
        if module is None:
            raise self.unsupported("its result length depends on the data, which needs the "
                                   "node inside a module")
        return add_data_symbol(module, prefix, bound)

    def at_maxima(self, shape: Sequence) -> int | None:
        """The element count of `shape` with each symbol at its max (None: a dim unknown)."""
        from ember.dialects.symbol_ranges import symbol_maxima
        from ember.runtime.symbolic import dim_symbols, dim_value

        module = self._module()
        maxima = symbol_maxima(module) if module is not None else {}
        count = 1
        for d in shape:
            if not all(s in maxima for s in dim_symbols(d)):
                return None
            count *= dim_value(d, maxima)
        return count

    def assume_equal(self, value: SSAValue, expected: Sequence[int], what: str) -> None:
        """An nn.assert that run-time `value` (ints) equals `expected` when the plan runs: the
        value the plan was built for (a declared result's shape), named in the failure."""
        from ember.dialects.nn.assertion import AssertOp

        want = self.constant(np.asarray(expected, np.int64))
        same = self.binary("eq", self.cast(value, element_type_of(want)), want)
        self.op(AssertOp, [same], {"message": f"node '{self.node.node_name}' "
                                              f"({self.node.ONNX_TYPE}): {what} must be "
                                              f"{list(expected)}, as the plan was built for"},
                num_results=0)

    # -- errors --------------------------------------------------------------------------------
    def unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"node '{self.node.node_name}' ({self.node.ONNX_TYPE}): {what}")

    # -- making ops ----------------------------------------------------------------------------
    def insert(self, op: OpT) -> OpT:
        Rewriter.insert_op(op, InsertPoint.before(self.node))
        set_origin(op, [self.node.node_name])
        return op

    def op(self, cls: type[OpT], operands: Sequence[SSAValue], props: dict[str, Any] | None = None,
           *, result_types: Sequence[Attribute] | None = None, num_results: int = 1) -> OpT:
        try:
            op = build(cls, operands, props, result_types=result_types, num_results=num_results)
        except ShapeError as e:
            raise ShapeError(f"node '{self.node.node_name}' ({self.node.ONNX_TYPE}): {e}") from None
        return self.insert(op)

    def emit(self, cls: type[NNOp], operands: Sequence[SSAValue],
             props: dict[str, Any] | None = None, *,
             result_types: Sequence[Attribute] | None = None) -> SSAValue:
        """The op's one result; a constant instead when every operand is a small constant, so
        shape computations (Shape -> Gather -> Concat -> Reshape) give later nodes constants."""
        op = self.op(cls, operands, props, result_types=result_types)
        traced = [traced_value(v, self.store) for v in operands]
        arrays = [a for a, _ in traced]
        if operands and all(a is not None and a.size <= FOLD_LIMIT for a in arrays):
            try:
                out = op.evaluate(arrays)[0]  # type: ignore[arg-type]
            except EmberError:
                return op.results[0]
            recipe = evaluated_recipe(op, arrays, [r for _, r in traced]) \
                if self.store.refit is not None else None
            Rewriter.erase_op(op)
            return self.constant(out, recipe=recipe)
        return op.results[0]

    def value(self, cls: type[NNOp], operands: Sequence[SSAValue], **props: Any) -> SSAValue:
        return self.emit(cls, operands, props)

    def unary(self, fn: str, x: SSAValue, alpha: float | None = None,
              beta: float | None = None) -> SSAValue:
        return self.value(UnaryOp, [x], fn=fn, alpha=alpha, beta=beta)

    def binary(self, fn: str, x: SSAValue, y: SSAValue) -> SSAValue:
        return self.value(BinaryOp, [x, y], fn=fn)

    def cast(self, x: SSAValue, element_type: Attribute) -> SSAValue:
        if element_type_of(x) == element_type:
            return x
        return self.value(CastOp, [x], to=element_type)

    def constant(self, array: np.ndarray | float | int, like: SSAValue | None = None, *,
                 recipe: Recipe | None = None) -> SSAValue:
        """A constant; with `like`, a scalar is made in `like`'s element type. `recipe`: how it
        was made from initializers (see `make_constant`)."""
        array = np.asarray(array)
        if like is not None:
            array = array.astype(numpy_dtype(element_type_of(like)))
            if recipe is not None:
                recipe = recipes.node("cast", [recipe], dtype=array.dtype.name)
        name = f"{self.node.node_name or self.node.ONNX_TYPE}.const"
        return self.insert(make_constant(array, self.store, name, recipe)).results[0]

    def reshape(self, x: SSAValue, target: Sequence) -> SSAValue:
        """x reshaped to `target` (static or symbolic dims); x itself if already that shape."""
        from ember.dialects.nn.movement import ReshapeOp

        if tuple(target) == shape_of(x):
            return x
        return self.emit(ReshapeOp, [x], result_types=[like(x, tuple(target))])

    # -- reading inputs ------------------------------------------------------------------------
    def const(self, value: SSAValue | None) -> np.ndarray | None:
        return None if value is None else constant_value(value, self.store)

    def required_const(self, name: str) -> np.ndarray | None:
        """The value of input `name`, which must be a constant if present."""
        value = self.node.onnx_input(name)
        if value is None:
            return None
        array = self.const(value)
        if array is None:
            raise self.unsupported(
                f"input '{name}' must be a constant (it is computed at run time)")
        return array

    def ints(self, name: str, default: Sequence[int] | None = None) -> list[int] | None:
        """An int list given as attribute (older opsets) or as a constant input (newer ones)."""
        if self.node.has_attr(name):
            return [int(v) for v in self.node.attr(name)]
        array = self.required_const(name) if _has_input(self.node, name) else None
        if array is not None:
            return [int(v) for v in np.asarray(array).reshape(-1)]
        return None if default is None else list(default)

    def shape(self, value: SSAValue) -> tuple:
        shape = shape_of(value)
        if shape is None:
            raise self.unsupported("an operand has unknown rank")
        return shape


def _has_input(node: OnnxOp, name: str) -> bool:
    return any(n == name for n, _, _ in node.INPUT_SPECS)


def declared_type(op: OnnxOp, value: SSAValue, rank: int, index: int = 0) -> Attribute | None:
    """The type ONNX's shape inference gave output `index`, when it is ranked as expected and
    agrees in element type with `value` (used where ember alone cannot know the dims)."""
    t = op.results[index].type
    shape = shape_of(t)
    if shape is None or len(shape) != rank or element_type_of(t) != element_type_of(value):
        return None
    return tensor_type(shape, element_type_of(value))


def with_declared(b: NNBuilder, cls: type[NNOp], operands: list[SSAValue], props: dict,
                  hint: Attribute | None) -> SSAValue:
    """An op with run-time parameter operands; the dims it cannot infer are taken from ONNX's
    inference (`hint`, the declared output type) where that has them."""
    op = b.op(cls, operands, props, result_types=[hint] if hint else None)
    if hint is not None:
        try:
            set_result_types(op, op.infer())
        except ShapeError as e:
            raise b.unsupported(str(e)) from None
    return op.results[0]
