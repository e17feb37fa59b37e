"""Kernel-level module -> plan manifest and sections (DESIGN §4).

Every tensor gets a buffer: graph inputs and outputs are bound at run time, weights and constants
live in the `weights` section, activations take the arena offsets that plan-memory recorded on
their kernel ops (`arena`, and the function's `ember.arena_bytes`), and views alias their base.
Each step names its template, its parameters (the CPU executor's descriptor) and the ONNX nodes
it came from. The manifest is built as the schema's dataclasses (runtime/manifest_schema.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import SSAValue

import ember
from ember.codegen.kernel_step import json_value, kernel_step, plan_shape
from ember.compiler.onnx_importer import graph_io_names
from ember.dialects.constants import dense_to_numpy
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import CudaOp, ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.nn.elementwise import ConstantOp, FillOp, WeightOp
from ember.dialects.origin import origin_of
from ember.dialects.tensor_types import element_type_of, format_of, shape_of
from ember.dialects.weights import weights_of
from ember.errors import EmberError
from ember.passes.plan_memory import (
    ACTIVATION_BYTES,
    ALIGNMENT,
    ARENA_BYTES,
    Interval,
    arena_conflicts,
)
from ember.runtime.manifest_schema import Buffer, Manifest, Step, Target, TensorInfo
from ember.runtime.symbolic import MAX, dim_value, profile_values, size_form


@dataclass
class _Buffer:
    id: int
    kind: str                       # input | output | weight | arena | view
    dtype: str
    shape: list[int]
    offset: int | None = None       # weights: in the section; arena: plan-memory's
    base: int | None = None
    name: str | None = None
    format: str = ""                # a 4-D tensor's format: its shape is in that byte order

    def schema(self) -> Buffer:
        return Buffer(self.id, self.kind, self.dtype, tuple(json_value(self.shape)),
                      # NCHW, ONNX's, goes without saying
                      format=self.format if self.format not in ("", "NCHW") else None,
                      offset=self.offset if self.kind in ("weight", "arena") else None,
                      base=self.base, name=self.name)

    def io(self, name: str, value: SSAValue) -> TensorInfo:
        """The graph input or output `name` bound to this buffer."""
        return TensorInfo(name, self.dtype, tuple(json_value(self.shape)), self.id,
                          _format(value, self.shape))

    def nbytes(self, symbols: dict[str, tuple[int, int, int]]) -> int:
        """Bytes at the profile's max shapes (a symbolic dim is a monomial, so a buffer is
        never bigger at a smaller shape: the arena planned at max serves every shape)."""
        maxima = profile_values(symbols, MAX)
        return math.prod(dim_value(d, maxima) for d in self.shape) * np.dtype(self.dtype).itemsize


@dataclass
class _PlanState:
    buffers: list[_Buffer] = field(default_factory=list)
    by_value: dict[SSAValue, _Buffer] = field(default_factory=dict)
    weights: bytearray = field(default_factory=bytearray)
    steps: list[Step] = field(default_factory=list)
    first_write: dict[int, int] = field(default_factory=dict)
    last_read: dict[int, int] = field(default_factory=dict)
    symbols: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # (dim, size): a symbolic dim that must have that size (an ordered set)
    constraints: dict[tuple[str, int], None] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)  # data-dependent symbols a step binds

    def is_data(self, symbol: str) -> bool:
        """A data-dependent symbol (its range starts at 0: dialects/symbol_ranges.py)."""
        return self.symbols.get(symbol, (1,))[0] == 0

    def new(self, value: SSAValue, kind: str, **kw: Any) -> _Buffer:
        shape = plan_shape(value, self.symbols)
        buf = _Buffer(len(self.buffers), kind, numpy_dtype(element_type_of(value)).name,
                      list(shape), format=_format(value, shape), **kw)
        self.buffers.append(buf)
        self.by_value[value] = buf
        return buf

    def add_weight(self, value: SSAValue, array: np.ndarray) -> None:
        pad = -len(self.weights) % ALIGNMENT
        self.weights.extend(b"\0" * pad)
        array = np.ascontiguousarray(array, dtype=numpy_dtype(element_type_of(value)))
        self.new(value, "weight", offset=len(self.weights))
        self.weights.extend(array.tobytes())

    def root(self, buf: _Buffer) -> _Buffer:
        while buf.base is not None:
            buf = self.buffers[buf.base]
        return buf


def build_plan(module: ModuleOp, *, symbols: dict[str, tuple[int, int, int]] | None = None,
               profiles: list[dict[str, Any]] | None = None,
               weight_refs: dict[int, str] | None = None) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest (a CPU plan's: target "any") and sections of a plan for a module at the
    kernel level. `symbols`: the (min, opt, max) of each symbolic input dim (see
    builder._apply_profiles); `profiles`: the optimization profiles, input name -> (min, opt,
    max) shapes, as the engine reports them; `weight_refs`: filled with each weight buffer's
    store name (for a REFIT build's recipes)."""
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    store = weights_of(module)
    in_names, out_names = graph_io_names(module)
    _check_io_names(list(in_names), list(out_names))
    state = _PlanState(symbols=dict(symbols or {}))
    for name, arg in zip(in_names, fn.body.block.args, strict=True):
        state.new(arg, "input", name=name)
    ret = None
    for op in fn.body.block.ops:
        if isinstance(op, WeightOp):
            state.add_weight(op.output, store[op.ref.data])
            if weight_refs is not None:
                weight_refs[len(state.buffers) - 1] = op.ref.data
        elif isinstance(op, ConstantOp):
            state.add_weight(op.output, dense_to_numpy(op.value))
        elif isinstance(op, FillOp):
            state.add_weight(op.output, op.evaluate([])[0])
        elif isinstance(op, ViewOp):
            base = state.by_value[op.input]
            view = state.new(op.output, "view", base=base.id)
            if size_form(view.shape) != size_form(base.shape):
                raise EmberError(
                    f"a reshape ({', '.join(origin_of(op)) or 'kernel.view'}) of {base.shape} to "
                    f"{view.shape} keeps the element count only for some values of the "
                    f"symbols {sorted(state.symbols)}: the model fixes a dim the profile lets "
                    "vary (e.g. a Reshape to a constant batch)")
        elif isinstance(op, LaunchOp | ElementwiseOp):
            _add_step(state, op)
        elif isinstance(op, CudaOp):
            # emit-cuda's record of a kernel's source: a CUDA build emits each step's kernel
            # through the same function, with the autotuner's tactic where it timed one
            continue
        elif isinstance(op, func.ReturnOp):
            ret = op
        else:
            raise EmberError(f"cannot plan {op.name}: run convert-nn-to-kernel first")
    assert ret is not None
    outputs = []
    for name, value in zip(out_names, ret.arguments, strict=True):
        buf = state.by_value[value]
        state.last_read[state.root(buf).id] = len(state.steps)
        outputs.append(buf.io(name, value))
    arena_bytes, activation_bytes = _memory_plan(fn, state)
    # a data-dependent symbol whose op was folded or removed sizes nothing
    state.symbols = {k: v for k, v in state.symbols.items()
                     if not state.is_data(k) or k in state.bound}
    symbolic = bool(state.symbols)
    manifest = Manifest(
        ember_version=ember.__version__, target=Target("any"),
        inputs=tuple(state.by_value[arg].io(name, arg)
                     for name, arg in zip(in_names, fn.body.block.args, strict=True)),
        outputs=tuple(outputs), buffers=tuple(b.schema() for b in state.buffers),
        arena_bytes=arena_bytes, activation_bytes=activation_bytes,
        weights_bytes=len(state.weights), steps=tuple(state.steps),
        symbols={k: tuple(json_value(v)) for k, v in state.symbols.items()} if symbolic
        else None,
        constraints=tuple(state.constraints) if symbolic and state.constraints else None,
        profiles=tuple(json_value({name: [list(s) for s in shapes]
                                   for name, shapes in p.items()}) for p in profiles or [])
        if symbolic else None)
    return manifest, {"weights": bytes(state.weights)}


def _memory_plan(fn: func.FuncOp, state: _PlanState) -> tuple[int, int]:
    """The arena size and unshared activation bytes that plan-memory recorded, its offsets set
    on the arena buffers; refused where the plan is missing, or stale (offsets that let two
    live buffers share bytes, e.g. after the IR changed or with other symbol maxima)."""
    recorded = [fn.attributes.get(ARENA_BYTES), fn.attributes.get(ACTIVATION_BYTES)]
    if not all(isinstance(a, IntegerAttr) for a in recorded) or any(
            b.kind == "arena" and b.offset is None for b in state.buffers):
        raise EmberError("the module has no memory plan (the function's ember.arena_bytes, "
                         "each kernel op's arena offsets): run plan-memory before packing")
    arena_bytes, activation_bytes = (a.value.data for a in recorded)
    arena = [b for b in state.buffers if b.kind == "arena"]
    intervals = [Interval(b.id, state.first_write[b.id],
                          state.last_read.get(b.id, state.first_write[b.id]),
                          b.nbytes(state.symbols)) for b in arena]
    problems = arena_conflicts(intervals, {b.id: b.offset for b in arena}, arena_bytes)
    if problems or activation_bytes != sum(iv.nbytes for iv in intervals):
        detail = "; ".join(problems[:3]) or (
            f"{activation_bytes} activation bytes recorded, "
            f"{sum(iv.nbytes for iv in intervals)} planned")
        raise EmberError(f"the module's memory plan does not fit its buffers ({detail}): "
                         "rerun plan-memory after the last pass that changes kernels")
    return arena_bytes, activation_bytes


def _format(value: SSAValue, shape: Any) -> str:
    """A 4-D tensor's format (NCHW where its type names none); "" for other ranks. I/O shapes
    and buffer shapes are in the format's byte order (an NHWC input is fed as [N, H, W, C]; an
    NC4HW4 one, 5-D, as [N, ceil(C/4), H, W, 4])."""
    logical = shape_of(value)
    rank = len(logical) if logical is not None else len(shape)
    return (format_of(value) or "NCHW") if rank == 4 else ""


def _check_io_names(ins: list[str], outs: list[str]) -> None:
    both = sorted(set(ins) & set(outs))
    if both:
        raise EmberError(f"{both} name both a graph input and a graph output; an engine's I/O "
                         "names must be unique (give the passthrough output its own name, e.g. "
                         "with an Identity node)")
    dup = sorted({n for n in outs if outs.count(n) > 1})
    if dup:
        raise EmberError(f"graph output(s) {dup} are listed more than once")


def _broadcast_constraints(state: _PlanState, template: str, params: dict[str, Any]) -> None:
    """A symbolic input dim that broadcasts against a static dim d > 1 (elementwise ops, an
    epilogue's inputs, expand) is valid only when it is d (or 1, which ember's kernels do not
    read as a broadcast): record `dim == d` (the dim may be a product, "5*N"); the runtime
    refuses other values with an error instead of reading past the input."""
    groups = []
    if template in ("elementwise", "expand"):
        groups.append((params.get("in_shapes", []), params.get("out_shapes", [[]])[0]))
    epilogue = params.get("epilogue")
    if epilogue:
        groups.append((epilogue["in_shapes"], params["out_shapes"][0]))
    for shapes, out in groups:
        for shape in shapes:
            for d, o in zip(reversed(shape), reversed(out), strict=False):
                if isinstance(d, str) and isinstance(o, int) and o > 1:
                    state.constraints.setdefault((d, o), None)


def _add_step(state: _PlanState, op: LaunchOp | ElementwiseOp) -> None:
    index = len(state.steps)
    ins = [state.by_value[v] for v in op.operands]
    for b in ins:
        root = state.root(b)
        state.last_read[root.id] = max(state.last_read.get(root.id, index), index)
    offsets = list(op.arena.get_values()) if op.arena is not None else [None] * len(op.results)
    outs = [state.new(r, "arena", offset=o) for r, o in zip(op.results, offsets, strict=True)]
    for b in outs:
        state.first_write[b.id] = index
    template, params = kernel_step(op, state.symbols)
    _broadcast_constraints(state, template, params)
    binds: dict[str, tuple[int, int]] = {}
    for k, b in enumerate(outs):
        for axis, d in enumerate(b.shape):
            if isinstance(d, str) and state.is_data(d) and d not in state.bound:
                binds[d] = (k, axis)
                state.bound.add(d)
    state.steps.append(Step(f"{template}_{index}", template, json_value(params),
                            tuple(b.id for b in ins), tuple(b.id for b in outs),
                            tuple(origin_of(op)), binds=binds or None))

