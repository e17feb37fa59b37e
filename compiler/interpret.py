"""Run an `nn` module with numpy, op by op through each op's `evaluate` (a reference for tests).

This is the semantics of the nn level, used to check legalization and passes numerically against
ONNX's reference; the deployable CPU path is the runtime's executor over a plan, not this.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from ember.dialects.nn.base import NNOp, bind_symbols, concrete_shape
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.nn.movement import RangeOp
from ember.dialects.tensor_types import shape_of
from ember.dialects.weights import weights_of
from ember.errors import EmberError, ShapeError
from ember.runtime.cpu_kernels.movement import range_


def main_function(module: ModuleOp) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp):
            return op
    raise EmberError("the module holds no func.func")


def interpret(module: ModuleOp, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name for inputs by name (names from the function's `ember.name` attributes)."""
    from ember.compiler.onnx_importer import graph_io_names

    fn = main_function(module)
    in_names, out_names = graph_io_names(module)
    store = weights_of(module)
    env: dict[SSAValue, np.ndarray] = {}
    bindings: dict[str, int] = {}  # the inputs' symbolic dims
    for name, arg in zip(in_names, fn.body.block.args, strict=True):
        if name not in inputs:
            raise EmberError(f"input '{name}' was not given")
        env[arg] = np.asarray(inputs[name])
        bindings.update(bind_symbols(shape_of(arg), env[arg].shape))
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            return {n: env[v] for n, v in zip(out_names, op.arguments, strict=True)}
        if isinstance(op, WeightOp):
            env[op.output] = store[op.ref.data]
            continue
        if not isinstance(op, NNOp):
            raise ShapeError(f"cannot interpret {op.name}: only nn ops run here")
        if isinstance(op, RangeOp) and op.limit is op.start:
            # the static-length form: its length is a symbol of the inputs, not an operand
            params = {"out_shapes": [concrete_shape(shape_of(op.output), bindings)]}
            results = range_([env[v] for v in op.operands], params)
        else:
            results = op.evaluate([env[v] for v in op.operands])
        for value, array in zip(op.results, results, strict=True):
            env[value] = array
    raise EmberError("the function has no func.return")
