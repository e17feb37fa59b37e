"""assign-layouts: each 4-D activation gets a format, NCHW (ONNX's) or NHWC, recorded in its type
(`tensor<1x64x56x56xf32, #nn.layout<NHWC>>`: the logical dims stay NCHW, the format orders bytes).

After this pass every 4-D activation carries a format; each kernel reads its operands in the
format it runs in, with a reformat (`kernel.launch "transpose"`, params `reformat = "A->B"`) only
where a producer's format differs from what a consumer needs, and none back to back. Kernels run
in NHWC have their params in physical terms: conv and pool gain `layout = "NHWC"` (conv weights
OHWI), layout-agnostic templates get permuted shapes and axes. Network I/O keeps NCHW unless
`io-formats` allows NHWC. Runs after convert-nn-to-kernel, before fuse-elementwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, FunctionType, ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.constants import dense_to_numpy
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.nn.base import dtype_name
from ember.dialects.nn.elementwise import ConstantOp, FillOp, WeightOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, format_of, static_shape, tensor_type
from ember.dialects.weights import weights_of

NCHW, NHWC = "NCHW", "NHWC"
# physical dim k of a 4-D tensor in a format is its logical (NCHW) dim PERMS[format][k]
PERMS: dict[str, tuple[int, ...]] = {NCHW: (0, 1, 2, 3), NHWC: (0, 2, 3, 1)}
# Whether GPU builds may run conv in NHWC (codegen/templates/conv.py implements it). Off: on the
# H100 the FP32 implicit-GEMM conv is a little faster in NCHW (ResNet-50 batch 32: 9.58 ms NCHW
# vs 9.93 NHWC; MobileNetV2 1.85 vs 1.89; NOTES.md), so NHWC would only add reformats.
CUDA_CONV_NHWC = False
# templates that read their params in physical terms: their NHWC form needs no template change
_AGNOSTIC = ("pool", "concat", "softmax", "transpose", "slice", "pad", "reduce")
_DATA = (WeightOp, ConstantOp, FillOp)


def physical_shape(t: Attribute | SSAValue) -> tuple[int, ...] | None:
    """The static shape in byte order: logical dims permuted by the format."""
    shape = static_shape(t)
    fmt = format_of(t)
    if shape is None or len(shape) != 4 or fmt not in PERMS:
        return shape
    return tuple(shape[p] for p in PERMS[fmt])


def preferred_format(op: LaunchOp | ElementwiseOp, *, conv_nhwc: bool = True) -> str | None:
    """The policy: the format a kernel runs fastest in, or None where it runs in any (its params
    rewritten in physical terms) and follows its producers."""
    if isinstance(op, ElementwiseOp):
        return None
    template, p = op.template.data, attribute_value(op.params)
    shape = static_shape(op.inputs[0]) if op.inputs else None
    if shape is None or len(shape) != 4 or template not in ("conv", *_AGNOSTIC):
        return NCHW
    if template == "conv":
        if p.get("layout") == NHWC:
            return NHWC
        return NHWC if conv_nhwc and p.get("groups") == 1 and shape[1] % 4 == 0 else NCHW
    if p.get("dynamic") or len(op.inputs) > 1 and template not in ("concat",):
        return NCHW  # run-time parameter operands are logical
    if template == "reduce" and not p.get("keepdims"):
        kept = [d for d in range(4) if d not in [a % 4 for a in p["axes"]]]
        return None if [d for d in PERMS[NHWC] if d in kept] == kept else NCHW
    return None


def is_reformat(op: Operation | Block | None) -> bool:
    return isinstance(op, LaunchOp) and op.template.data == "transpose" \
        and "reformat" in op.params.data


def _rank4(v: SSAValue) -> bool:
    shape = static_shape(v)
    return shape is not None and len(shape) == 4


def _fmt(v: SSAValue) -> str:
    return format_of(v) or NCHW


def _same_bytes(shape: Sequence[int], a: str, b: str) -> bool:
    """Whether `shape` has the same bytes in formats a and b (dims of 1 do not count)."""
    return [d for d in PERMS[a] if shape[d] != 1] == [d for d in PERMS[b] if shape[d] != 1]


def _is_data(v: SSAValue) -> bool:
    return isinstance(v.owner, _DATA)


def _names(op: Operation) -> list[str]:
    names = origin_of(op)
    if not names and isinstance(getattr(op, "origin", None), ArrayAttr):
        names = [a.data for a in op.origin.data if isinstance(a, StringAttr)]
    return names


def _relabel(v: SSAValue, fmt: str) -> SSAValue:
    if format_of(v) == fmt:
        return v
    shape = static_shape(v)
    return Rewriter.replace_value_with_new_type(v, tensor_type(shape, element_type_of(v), fmt))


def _reformat_op(v: SSAValue, fmt: str, perm: Sequence[int], label: str,
                 names: list[str]) -> LaunchOp:
    out = tensor_type(static_shape(v), element_type_of(v), fmt)
    dtype = dtype_name(v.type)
    params = {"perm": list(perm), "reformat": label, "in_shapes": [list(physical_shape(v))],
              "in_dtypes": [dtype], "out_shapes": [list(physical_shape(out))],
              "out_dtypes": [dtype]}
    props: dict[str, Attribute] = {"template": StringAttr("transpose"),
                                   "params": to_attribute(params)}
    if names:
        props["origin"] = ArrayAttr([StringAttr(n) for n in names])
    op = LaunchOp.create(operands=[v], result_types=[out], properties=props)
    set_origin(op, names)
    return op


def _reformat_perm(src: str, dst: str) -> list[int]:
    inverse = [PERMS[src].index(d) for d in range(4)]
    return [inverse[PERMS[dst][k]] for k in range(4)]


class _Assigner:
    def __init__(self, module: ModuleOp, fn: func.FuncOp, io_formats: set[str],
                 conv_nhwc: bool) -> None:
        self.module, self.fn, self.block = module, fn, fn.body.block
        self.io_formats, self.conv_nhwc = io_formats, conv_nhwc
        self.converted: dict[tuple[SSAValue, str], SSAValue] = {}
        self.nhwc: set[Operation | SSAValue] = set()

    # -- which convs (and inputs) run in NHWC: per region, where it pays ---------------------------

    def _kind(self, node: Operation | SSAValue) -> str:
        """strong (wants NHWC), flex (any format) or fixed (NCHW) for the region analysis."""
        if isinstance(node, SSAValue) or isinstance(node, func.ReturnOp):
            return "flex" if NHWC in self.io_formats else "fixed"
        if isinstance(node, ElementwiseOp) or (isinstance(node, LaunchOp)
                                               and not is_reformat(node)):
            pref = preferred_format(node, conv_nhwc=self.conv_nhwc)
            return "flex" if pref is None else "strong" if pref == NHWC else "fixed"
        return "fixed"

    def select(self) -> None:
        """A region (kernels joined through activations that can change format) runs in NHWC
        when its NHWC-preferring convs outnumber the reformats at its border."""
        parent: dict[object, object] = {}

        def root(x: object) -> object:
            while parent.setdefault(x, x) is not x:
                x = parent[x]
            return x

        edges = []
        for v in self._activations():
            src = v.owner if not isinstance(v.owner, Block) else v
            for use in v.uses:
                user = use.operation
                if isinstance(user, LaunchOp) and user.template.data == "conv" and use.index == 1:
                    continue  # a weight: not an activation edge
                edges.append((v, src, user))
                if self._kind(src) != "fixed" and self._kind(user) != "fixed":
                    parent[root(src)] = root(user)
        border: dict[object, set[SSAValue]] = {}
        for v, src, user in edges:
            if (self._kind(src) == "fixed") != (self._kind(user) == "fixed"):
                inside = user if self._kind(src) == "fixed" else src
                border.setdefault(root(inside), set()).add(v)
        nodes = [*self.block.args, *self.block.ops]
        strong = Counter(root(n) for n in nodes if self._kind(n) == "strong")
        chosen = {r for r, n in strong.items() if n > len(border.get(r, ()))}
        self.nhwc = {n for n in nodes if self._kind(n) != "fixed" and root(n) in chosen}

    def _activations(self) -> list[SSAValue]:
        """4-D values computed at run time whose bytes differ between the formats."""
        values = [*self.block.args]
        for op in self.block.ops:
            if not isinstance(op, _DATA):
                values.extend(op.results)
        return [v for v in values if _rank4(v) and not _same_bytes(static_shape(v), NCHW, NHWC)]

    # -- operands in the format a kernel reads ----------------------------------------------------

    def convert(self, v: SSAValue, fmt: str, consumer: Operation) -> SSAValue:
        """`v` (4-D) in `fmt`: itself, a view (same bytes), a permuted constant or a reformat."""
        src = _fmt(v)
        if src == fmt:
            return v
        if (v, fmt) in self.converted:
            return self.converted[(v, fmt)]
        shape = static_shape(v)
        if _same_bytes(shape, src, fmt):
            new = self._view(v, shape, fmt)
        elif _is_data(v) and (new := self._constant(v, shape, fmt)) is not None:
            pass
        else:
            names = _names(consumer) if not isinstance(consumer, func.ReturnOp) else \
                _names(v.owner) if isinstance(v.owner, Operation) else []
            new = self._insert_after(v, _reformat_op(
                v, fmt, _reformat_perm(src, fmt), f"{src}->{fmt}", names))
        self.converted[(v, fmt)] = new
        return new

    def _view(self, v: SSAValue, shape: Sequence[int], fmt: str) -> SSAValue:
        t = tensor_type(shape, element_type_of(v), fmt)
        return self._insert_after(v, ViewOp.create(operands=[v], result_types=[t]))

    def _insert_after(self, v: SSAValue, op: Operation) -> SSAValue:
        where = InsertPoint.at_start(self.block) if isinstance(v.owner, Block) \
            else InsertPoint.after(v.owner)
        Rewriter.insert_op(op, where)
        return op.results[0]

    def _constant(self, v: SSAValue, shape: Sequence[int], fmt: str) -> SSAValue | None:
        """A data op holding `v`'s values as the 4-D `shape` in `fmt`'s byte order."""
        owner = v.owner
        t = tensor_type(shape, element_type_of(v), fmt)
        if isinstance(owner, FillOp):
            new: Operation = FillOp.create(properties=dict(owner.properties), result_types=[t])
        else:
            store = weights_of(self.module)
            if isinstance(owner, WeightOp):
                if owner.ref.data not in store:
                    return None  # a module parsed from text: reformat at run time instead
                array, base = store[owner.ref.data], owner.ref.data
            else:
                array, base = dense_to_numpy(owner.value), "constant"
            array = np.asarray(array).reshape(shape).transpose(PERMS[fmt])
            ref = store.add(f"{base}.{'OHWI' if fmt == NHWC else fmt}",
                            np.ascontiguousarray(array))
            new = WeightOp.create(properties={"ref": StringAttr(ref)}, result_types=[t])
        return self._insert_after(v, new)

    def broadcast(self, v: SSAValue, fmt: str, consumer: Operation) -> SSAValue:
        """`v` read with broadcasting against a 4-D result in `fmt`."""
        shape = static_shape(v)
        if shape is None or len(shape) > 4:
            return v
        if len(shape) == 4:
            return self.convert(v, fmt, consumer)
        if fmt == NCHW or int(np.prod(shape)) == 1:
            return v
        if (v, fmt) in self.converted:
            return self.converted[(v, fmt)]
        full = (1,) * (4 - len(shape)) + tuple(shape)
        if _same_bytes(full, NCHW, fmt):
            new = self._view(v, full, fmt)
        elif not _is_data(v) or (new := self._constant(v, full, fmt)) is None:
            new = self.convert(self._view(v, full, NCHW), fmt, consumer)
        self.converted[(v, fmt)] = new
        return new

    # -- the walk ----------------------------------------------------------------------------------

    def run(self) -> None:
        self.select()
        for arg in self.block.args:
            if _rank4(arg):
                _relabel(arg, NHWC if arg in self.nhwc else NCHW)
        for op in list(self.block.ops):
            if isinstance(op, ViewOp):
                v = op.input
                if _rank4(v) and not _same_bytes(static_shape(v), _fmt(v), NCHW):
                    op.operands[0] = self.convert(v, NCHW, op)
                if _rank4(op.output):
                    _relabel(op.output, NCHW)
            elif isinstance(op, func.ReturnOp):
                for i, v in enumerate(op.arguments):
                    if _rank4(v) and not _is_data(v) and _fmt(v) not in self.io_formats:
                        op.operands[i] = self.convert(v, NCHW, op)
            elif is_reformat(op):
                _relabel(op.outputs[0], _fmt(op.outputs[0]))
            elif isinstance(op, ElementwiseOp | LaunchOp):
                self._kernel(op)
        for owner in {v.owner for v, _ in self.converted if isinstance(v.owner, _DATA)}:
            if not owner.results[0].uses:
                Rewriter.erase_op(owner)  # replaced by its permuted copy

    def _follow(self, op: Operation) -> str:
        """The most common format among the op's activation operands; a tie (or none) goes to
        the format of the op's region."""
        formats = Counter(_fmt(v) for v in op.operands if _rank4(v) and not _is_data(v)
                          and not _same_bytes(static_shape(v), NCHW, NHWC))
        region = NHWC if op in self.nhwc else NCHW
        return max((region, *formats), key=lambda f: (formats[f], f == region))

    def _kernel(self, op: ElementwiseOp | LaunchOp) -> None:
        pref = preferred_format(op, conv_nhwc=self.conv_nhwc)
        if pref == NHWC and op not in self.nhwc:
            pref = NCHW
        fmt = pref or self._follow(op)
        if isinstance(op, ElementwiseOp):
            for i, v in enumerate(op.inputs):
                op.operands[i] = self.broadcast(v, fmt, op)
        else:
            extra = len(op.epilogue_inputs)
            own = len(op.inputs) - extra
            for i, v in enumerate(op.inputs):
                if i >= own:
                    op.operands[i] = self.broadcast(v, fmt, op)
                elif _rank4(v):
                    op.operands[i] = self.convert(v, fmt, op)
        for r in op.results:
            if _rank4(r):
                _relabel(r, fmt)
        if isinstance(op, LaunchOp) and fmt == NHWC:
            op.properties["params"] = to_attribute(_physical_params(op))


def _physical_params(op: LaunchOp) -> dict:
    """The launch's params for its operands and results in their formats (byte order)."""
    p = attribute_value(op.params)
    template = op.template.data
    src = _fmt(op.inputs[0])
    perm = PERMS[src]
    own = len(p.get("in_shapes", []))
    p["in_shapes"] = [list(physical_shape(v)) for v in op.inputs[:own]]
    p["out_shapes"] = [list(physical_shape(r)) for r in op.results]
    if template in ("conv", "pool"):
        p["layout"] = NHWC
    elif template in ("concat", "softmax"):
        p["axis"] = perm.index(int(p["axis"]) % 4)
    elif template == "reduce":
        p["axes"] = sorted(perm.index(int(a) % 4) for a in p["axes"])
    elif template == "slice":
        for key in ("starts", "ends", "steps"):
            p[key] = [p[key][d] for d in perm]
    elif template == "pad":
        pads = p["pads"]
        p["pads"] = [pads[d] for d in perm] + [pads[4 + d] for d in perm]
    elif template == "transpose":
        out = PERMS.get(_fmt(op.results[0]), PERMS[NCHW])
        inverse = [perm.index(d) for d in range(4)]
        p["perm"] = [inverse[int(p["perm"][out[k]])] for k in range(4)]
    return p


def cancel_reformats(block: Block) -> None:
    """Back-to-back reformats compose: A->B->A disappears, A->B->C becomes one A->C."""
    for op in list(block.ops):
        if not is_reformat(op) or not is_reformat(op.inputs[0].owner):
            continue
        first = op.inputs[0].owner
        source = first.inputs[0]
        p1, p2 = attribute_value(first.params)["perm"], attribute_value(op.params)["perm"]
        perm = [p1[k] for k in p2]
        if perm == list(range(len(perm))) and _fmt(source) == _fmt(op.outputs[0]):
            op.outputs[0].replace_all_uses_with(source)
            Rewriter.erase_op(op)
        else:
            label = f"{_fmt(source)}->{_fmt(op.outputs[0])}"
            new = _reformat_op(source, _fmt(op.outputs[0]), perm, label, _names(op))
            Rewriter.replace_op(op, new)
        if not first.outputs[0].uses:
            Rewriter.erase_op(first)


@dataclass(frozen=True)
class AssignLayouts(ModulePass):
    name = "assign-layouts"

    io_formats: str = NCHW
    """Formats the network's 4-D inputs and outputs may take, comma-separated ("NCHW,NHWC")."""
    conv_nhwc: bool = True
    """Whether conv may run in NHWC (False for GPU builds until the CUDA conv template can)."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        io_formats = {f.strip().upper() for f in self.io_formats.split(",") if f.strip()}
        for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
            _Assigner(module, fn, io_formats | {NCHW}, self.conv_nhwc).run()
            cancel_reformats(fn.body.block)
            results = [v.type for v in fn.body.block.last_op.operands]
            fn.function_type = FunctionType.from_lists(
                [a.type for a in fn.body.block.args], results)


__all__ = ["AssignLayouts", "CUDA_CONV_NHWC", "NCHW", "NHWC", "PERMS", "cancel_reformats",
           "is_reformat", "physical_shape", "preferred_format"]
