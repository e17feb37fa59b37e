"""fuse-strided-reads: an elementwise kernel reads the input of the transposes and slices before
it through strides, so those data-movement kernels do not run.

A chain `kernel.launch "transpose"` / `"slice"` / `kernel.view` (a reshape) ending in an input of
a `kernel.elementwise` only moves elements: each element the elementwise kernel reads is one
element of the chain's first input at `offset + sum(c_d * strides[d])` of the output coordinates
`c`. This pass computes that offset and those strides, records them in the elementwise op's
`views` (the plan step's `in_views`) and makes the op read the chain's first input directly;
the chain's kernels are erased. A quantized BERT's Q, K and V (slices of the merged int8 GEMM's
result, reshaped to heads and transposed) are read this way by the kernels that dequantize them.

What is absorbed: links that each have one user (the next link, or the elementwise op),
static shapes, row-major buffers (no NHWC / NC4HW4 format, no layout reformat), reshapes
that strides can express (splitting or merging dims that are contiguous among themselves), and
at least one transpose or slice in the chain. A chain whose strided read would not move along
memory with the output's innermost dim (its stride there none of -1, 0, 1) is absorbed only
where its first input is small (`SCATTERED_BYTES`: a buffer its producer just wrote, which the
GPU's L2 still holds, so scattered reads cost less than a second kernel); a large one keeps its
transpose kernel, which reads and writes coalesced.
"""

from __future__ import annotations

import math

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.origin import kernel_origin, set_origin
from ember.dialects.tensor_types import format_of, shape_of
from ember.passes.fuse_elementwise import _bytes
from ember.runtime.formats import NCHW

MOVEMENT = ("transpose", "slice")
SCATTERED_BYTES = 4 << 20  # the largest first input read across its rows (Hopper's L2: 50 MB)


def _row_major(value: SSAValue) -> list[int] | None:
    """The value's static shape, if its buffer is row-major in that shape."""
    shape = shape_of(value)
    if shape is None or any(not isinstance(d, int) for d in shape) \
            or format_of(value) not in ("", NCHW):
        return None
    return list(shape)


def view_strides(shape: list[int], strides: list[int], new: list[int]) -> list[int] | None:
    """Strides reading `new` (same element count) from elements laid out by `shape`/`strides`
    in row-major order, or None where no strides can: each run of `new` dims must cover a run
    of `shape` dims that are contiguous among themselves."""
    count = math.prod(shape)
    if count != math.prod(new):
        return None
    if count <= 1 or not shape:
        return [0] * len(new)
    out = [0] * len(new)
    at = len(new) - 1
    base = strides[-1]
    seen = viewed = 1
    for d in range(len(shape) - 1, -1, -1):
        seen *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != seen * base):
            while at >= 0 and (viewed < seen or new[at] == 1):
                out[at] = viewed * base
                viewed *= new[at]
                at -= 1
            if viewed != seen:
                return None
            if d > 0:
                base, seen, viewed = strides[d - 1], 1, 1
    return out if at == -1 else None


def _chain(value: SSAValue, consumer: Operation) -> tuple[SSAValue, list[Operation]] | None:
    """The first input of the movement chain ending in `value` (read by `consumer`), and the
    chain's ops from `consumer`'s side; None without a transpose or slice in it."""
    links: list[Operation] = []
    user = consumer
    while value.uses.get_length() == 1 and next(iter(value.uses)).operation is user:
        op = value.owner
        if isinstance(op, ViewOp):
            links.append(op)
            value, user = op.input, op
        elif isinstance(op, LaunchOp) and op.template.data in MOVEMENT \
                and op.epilogue is None and len(op.outputs) == 1 and len(op.inputs) == 1 \
                and "reformat" not in op.params.data \
                and (op.template.data != "slice" or "starts" in op.params.data):
            links.append(op)
            value, user = op.inputs[0], op
        else:
            break
    if not any(isinstance(op, LaunchOp) for op in links):
        return None
    while isinstance(links[-1], ViewOp):  # views next to the first input change nothing
        value = links.pop().results[0]
    return value, links


def _strides(source: SSAValue, links: list[Operation]) -> tuple[int, list[int]] | None:
    """(offset, strides) of the chain's result over its first input's elements."""
    shape = _row_major(source)
    if shape is None:
        return None
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    offset = 0
    for op in reversed(links):
        result = op.results[0]
        new = _row_major(result)
        if new is None:
            return None
        if isinstance(op, ViewOp):
            found = view_strides(shape, strides, new)
            if found is None:
                return None
            strides = found
        elif op.template.data == "transpose":
            perm = [int(p) for p in attribute_value(op.params.data["perm"])]
            strides = [strides[p] for p in perm]
        else:  # slice: start and step per dim, already clamped by the compiler
            params = op.params.data
            starts = [int(s) for s in attribute_value(params["starts"])]
            steps = [int(s) for s in attribute_value(params["steps"])] \
                if "steps" in params else [1] * len(shape)
            offset += sum(s * t for s, t in zip(starts, strides, strict=True))
            strides = [s * t for s, t in zip(steps, strides, strict=True)]
        shape = new
    return offset, strides


def _broadcast(shape: list[int], strides: list[int], out: list[int]) -> list[int]:
    """`strides` of an input of `shape` read at the output's coordinates (numpy broadcasting:
    0 along broadcast dims)."""
    pad = len(out) - len(shape)
    return [0 if d < pad or shape[d - pad] == 1 and out[d] != 1 else strides[d - pad]
            for d in range(len(out))]


def _absorb(op: ElementwiseOp) -> bool:
    out = _row_major(op.output)
    if out is None:
        return False
    views = {int(v["input"]): v for v in (attribute_value(op.views) if op.views else [])}
    operands = list(op.inputs)
    erased: list[Operation] = []
    for k, value in enumerate(op.inputs):
        if k in views or operands.count(value) > 1:
            continue
        found = _chain(value, op)
        if found is None:
            continue
        source, links = found
        mapped = _strides(source, links)
        in_shape = _row_major(value)
        if mapped is None or in_shape is None or len(in_shape) > len(out):
            continue
        offset, strides = mapped
        strides = _broadcast(in_shape, strides, out)
        if out and out[-1] > 1 and strides[-1] not in (-1, 0, 1) and \
                math.prod(_row_major(source) or []) * _bytes(source) > SCATTERED_BYTES:
            continue  # large, and not read along memory: the movement kernel stays
        views[k] = {"input": k, "offset": offset, "strides": strides}
        operands[k] = source
        erased += links
    if not erased:
        return False
    names = [n for link in reversed(erased) for n in kernel_origin(link)]
    names = list(dict.fromkeys(names + kernel_origin(op)))
    op.operands = operands
    if names:  # the absorbed kernels' nodes first, as they ran before it
        op.properties["origin"] = ArrayAttr([StringAttr(n) for n in names])
        set_origin(op, names)
    op.views = ArrayAttr([DictionaryAttr({
        "input": to_attribute(v["input"]), "offset": to_attribute(v["offset"]),
        "strides": to_attribute(list(v["strides"]))}) for _, v in sorted(views.items())])
    for link in erased:  # each link's only user was the one before it (or `op`)
        Rewriter.erase_op(link)
    return True


class FuseStridedReads(ModulePass):
    name = "fuse-strided-reads"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in list(module.walk()):
            if isinstance(op, ElementwiseOp) and op.tactic is None:
                _absorb(op)
