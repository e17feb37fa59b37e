"""A kernel op as the data its template reads: the template name and its parameters, as a plan
step stores them. The plan builder and the emit-cuda pass both take a step from here, so the
kernel that emit-cuda shows is the kernel the plan runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, Block, Operation, SSAValue

from ember.dialects.attributes import attribute_value
from ember.dialects.constants import dense_to_numpy
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ScalarOp, ViewOp, YieldOp
from ember.dialects.nn.elementwise import ConstantOp, WeightOp
from ember.dialects.tensor_types import element_type_of, format_of, shape_of
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import EmberError
from ember.runtime.formats import FORMATS, NC4HW4, physical_of
from ember.runtime.manifest import jsonable
from ember.runtime.symbolic import is_monomial_over


def json_value(value: Any) -> Any:
    """Python data as strict JSON (the manifest's `jsonable`), element types as dtype names."""
    return jsonable(value, lambda v: numpy_dtype(v).name if isinstance(v, Attribute) else v)


def plan_shape(value: SSAValue, symbols: Mapping[str, tuple[int, int, int]]
               ) -> list[int | str]:
    """A value's buffer shape (in its format's byte order): ints, and monomials ("768*N") of
    the plan's symbols where a dim is symbolic."""
    logical = shape_of(value)
    if logical is None or any(isinstance(d, str) and ("?" in d or not is_monomial_over(
            d, symbols)) for d in logical):
        known = f"; the plan's symbols are {sorted(symbols)}" if symbols else (
            "; give the model static input shapes or an optimization profile")
        raise EmberError(f"cannot plan {value.type}: every dim must be static or a product of "
                         f"symbols that the profile bounds{known}")
    fmt = format_of(value)
    if len(logical) == 4 and fmt in FORMATS:
        if fmt == NC4HW4 and isinstance(logical[1], str):
            raise EmberError(f"cannot plan {value.type}: NC4HW4 needs a static channel count")
        return list(physical_of(logical, fmt))
    return list(logical)


def region_descriptor(block: Block) -> dict[str, Any]:
    """A scalar region as a list of ops over numbered values (block arguments first)."""
    index: dict[SSAValue, int] = {a: i for i, a in enumerate(block.args)}
    ops = []
    result = None
    for s in block.ops:
        if isinstance(s, YieldOp):
            result = index[s.value]
            continue
        assert isinstance(s, ScalarOp)
        entry: dict[str, Any] = {"fn": s.fn.data, "args": [index[a] for a in s.args],
                                 "dtype": numpy_dtype(s.result.type).name}
        for k in ("alpha", "beta"):
            if k in s.properties:
                entry[k] = attribute_value(s.properties[k])
        if s.table is not None:
            entry["table"] = [int(v) for v in s.table.get_values()]
        index[s.result] = len(block.args) + len(ops)
        ops.append(entry)
    return {"ops": ops, "result": result}


# constants of at most this many elements get ranges (scales, per-channel vectors; a divisor
# is rarely more, and a large weight read elementwise is not worth scanning at each emit)
RANGE_LIMIT = 1 << 16


def constant_ranges(values: Sequence[SSAValue], first: int) -> dict[str, list[float]]:
    """{str(first + k): [a, b]} for the values that are float constants of the build with
    every element finite and of a magnitude within [a, b], at most `RANGE_LIMIT` of them (an
    `nn.constant`: a QDQ scale; an `nn.weight` of a build that cannot refit it: a GELU's
    sqrt(2) initializer, a merged Q/K/V GEMM's per-column scales), also through views of
    them (`kernel.view`: an INT8 conv's per-channel scale and bias as [1, 1, 1, C]): a region's
    `constant_ranges`, which codegen reads to prove where
    a division needs no full divide (`quantize_c.divisions`). The kernel still reads the
    values from their buffers, so kernels whose ranges lead to the same forms (each layer's
    scales, all within `quantize_c.SAFE_DIVISOR`) share one source."""
    out: dict[str, list[float]] = {}
    for k, v in enumerate(values):
        owner = v.owner
        while isinstance(owner, ViewOp):  # the same values, another shape
            owner = owner.input.owner
        if str(element_type_of(v)) not in ("f32", "f16", "bf16") or \
                not isinstance(owner, ConstantOp | WeightOp):
            continue
        if isinstance(owner, ConstantOp):
            array = dense_to_numpy(owner.value)
        else:
            store = _store(owner)
            if store is None or store.refit is not None or owner.ref.data not in store:
                continue
            array = np.asarray(store[owner.ref.data])
        if 0 < array.size <= RANGE_LIMIT and np.isfinite(array).all():
            size = np.abs(array.astype(np.float64))
            out[str(first + k)] = [float(size.min()), float(size.max())]
    return out


def _store(op: Operation) -> WeightStore | None:
    """The weight store of the module holding `op` (None outside a module)."""
    while op is not None and not isinstance(op, ModuleOp):
        op = op.parent_op()
    return weights_of(op) if op is not None else None


def kernel_step(op: LaunchOp | ElementwiseOp, symbols: Mapping[str, tuple[int, int, int]],
                codegen: bool = False) -> tuple[str, dict[str, Any]]:
    """(template, params) of a kernel op: a launch's params with its tactic (select-tactics;
    its `small_tactics` as "tactic_small") and epilogue (with `out_dtype`, the type it stores,
    where that is not the kernel's own result type: a fused cast); an elementwise op's region
    over its operands' buffer shapes and dtypes. Shapes are `plan_shape`s over `symbols`;
    values are Python data (see `json_value`). `codegen`: for the CUDA emitter (emit-cuda, the
    autotuner's candidates), with each region's `constant_ranges`, which the plan's step does
    not keep (its kernels read the constants from their buffers; codegen alone uses the
    ranges, to choose exact forms of a division)."""
    if isinstance(op, LaunchOp):
        params = attribute_value(op.params)
        if op.tactic is not None:
            params["tactic"] = attribute_value(op.tactic)
        if op.small_tactics is not None:  # the autotuner's, for small-shape variants
            params["tactic_small"] = attribute_value(op.small_tactics)
        if op.epilogue is not None:
            # value 0 is the kernel's own result, 1.. the trailing (extra) inputs
            extra = op.epilogue_inputs
            params["epilogue"] = {**region_descriptor(op.epilogue.block),
                                  "in_shapes": [plan_shape(v, symbols) for v in extra],
                                  "in_dtypes": [_dtype(v) for v in extra]}
            ranges = constant_ranges(extra, first=1) if codegen else {}
            if ranges:
                params["epilogue"]["constant_ranges"] = ranges
            stored = _dtype(op.outputs[0])
            if stored != params["out_dtypes"][0]:  # the epilogue ends in a cast
                params["epilogue"]["out_dtype"] = stored
        if codegen and op.template.data == "attention_chain":
            params["stages"] = [_stage_ranges(stage, op.inputs) for stage in params["stages"]]
        return op.template.data, params
    region = region_descriptor(op.body.block)
    ranges = constant_ranges(op.inputs, first=0) if codegen else {}
    if ranges:
        region["constant_ranges"] = ranges
    params = {
        "region": region,
        "in_shapes": [plan_shape(v, symbols) for v in op.inputs],
        "in_dtypes": [_dtype(v) for v in op.inputs],
        "out_shapes": [plan_shape(v, symbols) for v in op.results],
        "out_dtypes": [_dtype(v) for v in op.results]}
    if op.views is not None:  # inputs read through strides (fuse-strided-reads)
        params["in_views"] = attribute_value(op.views)
    return "elementwise", params


def _stage_ranges(stage: dict, operands: Sequence[SSAValue]) -> dict:
    """A fused attention chain's stage with its region's `constant_ranges` (an elementwise
    stage's region over its inputs, a launch's epilogue over its extra inputs), from the
    launch's operands that its inputs name ("in<i>"; the others are earlier stages)."""
    params = dict(stage["params"])
    key, first = ("region", 0) if stage["template"] == "elementwise" else ("epilogue", None)
    region = params.get(key)
    if region is None:
        return stage
    names = stage["inputs"]
    if first is None:  # the epilogue's value 1 is the launch's first extra input
        first = 1 - (len(names) - len(region["in_shapes"]))
    ranges = {}
    for i, name in enumerate(names):
        if name.startswith("in") and i + first >= 0:
            ranges.update(constant_ranges([operands[int(name[2:])]], first=i + first))
    if ranges:
        params[key] = {**region, "constant_ranges": ranges}
    return {**stage, "params": params}


def _dtype(value: SSAValue) -> str:
    return numpy_dtype(element_type_of(value)).name
