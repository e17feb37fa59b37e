"""assign-layouts: each 4-D activation gets a format, NCHW (ONNX's), NHWC or the channel-packed
NC4HW4 (`layout_formats`), recorded in its type (`tensor<1x64x56x56xf32, #nn.layout<NHWC>>`: the
logical dims stay NCHW, the format orders bytes).

After this pass every 4-D activation carries a format; each kernel reads its operands in the
format it runs in, with a reformat (`kernel.launch "transpose"`, params `reformat = "A->B"`) only
where a producer's format differs from what a consumer needs, and none back to back. Kernels run
in NHWC have their params in physical terms: conv and pool gain `layout = "NHWC"` (conv weights
OHWI), layout-agnostic templates get permuted shapes and axes. Network I/O keeps NCHW unless
`io-formats` allows NHWC. Runs after convert-nn-to-kernel, before fuse-elementwise.

NC4HW4 (`packed`, off by default: `PACKED_FORMAT`): regions of kernels that compute exactly in it
(`packable`: conv, pool, elementwise whose broadcast operands are per channel or scalar, concat,
reduce over N/H/W) run packed where their NC4HW4-preferring convs (depthwise, C % 4 == 0)
outnumber the reformats at the border; this is decided before NHWC. Packed kernels' params are
physical ([N, ceil(C/4), H, W, 4]); conv gains `layout = "NC4HW4"`, `channels` (its logical C)
and, for depthwise with its weight in the store, `weight_layout = "C4RS4"` (weight
[ceil(C/4), R, S, 4], zero pad channels; otherwise OIHW). Reformats from or to NC4HW4 are
`kernel.launch "reformat"` (params `reformat = "A->B"`, `channels`).

Where choose-formats ran (the function carries its `formats` summary), its choice replaces the
policy: each kernel op runs in its `format` attribute, each network input in the format recorded
for it; kernels without one follow their operands as flexible kernels do.
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
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.kernel_templates import TEMPLATES, Layout, descriptor
from ember.dialects.nn.base import dtype_name
from ember.dialects.nn.elementwise import ConstantOp, FillOp, WeightOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, format_of, static_shape, tensor_type
from ember.dialects.weights import weights_of
from ember.errors import PassError
from ember.passes.convert_onnx_to_nn.builder import record_recipe, traced_value
from ember.passes.format_choice import chosen_formats
from ember.passes.layout_formats import (
    NC4HW4,
    NCHW,
    NHWC,
    PERMS,
    canonical_format,
    physical_shape,
    same_bytes,
)
from ember.runtime.cpu_kernels.layout import pack, pack_depthwise_weight
from ember.runtime.refit_recipes import node

# Whether GPU builds may run conv in NHWC (codegen/templates/conv.py implements it). Off: on the
# H100 the FP32 implicit-GEMM conv is a little faster in NCHW (ResNet-50 batch 32: 9.58 ms NCHW
# vs 9.93 NHWC; MobileNetV2 1.85 vs 1.89; NOTES.md), so NHWC would only add reformats.
CUDA_CONV_NHWC = False
# The same for CPU builds: the numpy conv is NCHW-native, so NHWC costs two transposes per conv
# (light_resnet50 on the CPU executor: 269 ms with NHWC convs vs 175 ms NCHW).
CPU_CONV_NHWC = False
# Whether builds use the channel-packed NC4HW4 format (BuilderConfig.packed_format overrides).
# Off by measurement: depthwise runs vectorized (float4) in it, but the GEMM convs' stride-4
# reads cost more than that saves in FP32 on the H100 (MobileNetV2 batch 32: 2.51 ms packed vs
# 1.84 NCHW; batch 1 0.31 vs 0.30; NOTES.md). Meant for kernels that read whole packs (INT8/FP16).
PACKED_FORMAT = False
# launch templates that run in any format: an NHWC / NC4HW4 form of their own (conv, pool) or
# params in physical terms; the rest read NCHW (each descriptor's `layout` says which)
_ANY_FORMAT = frozenset(t for t, d in TEMPLATES.items() if d.op == "kernel.launch"
                        and d.layout in (Layout.NHWC_FORM, Layout.PHYSICAL))
_DATA = (WeightOp, ConstantOp, FillOp)


def preferred_format(op: LaunchOp | ElementwiseOp, *, conv_nhwc: bool = True,
                     packed: bool = False, half_conv_nhwc: bool = False) -> str | None:
    """The policy: the format a kernel runs fastest in, or None where it runs in any (its params
    rewritten in physical terms) and follows its producers. With `packed`, a depthwise conv over
    C % 4 == 0 channels prefers NC4HW4 (its direct tactic runs vectorized, 4 channels a thread).
    With `half_conv_nhwc`, an FP16/BF16 conv (ungrouped or depthwise) over C % 8 == 0 channels
    (an FP32 one allowed TF32 over C % 4 == 0, an int8 one over C % 16 == 0) prefers NHWC (the
    tensor-core conv copies a pixel's channels in 16-byte chunks).
    """
    if isinstance(op, ElementwiseOp):
        return None
    template, p = op.template.data, attribute_value(op.params)
    shape = static_shape(op.inputs[0]) if op.inputs else None
    if shape is None or len(shape) != 4 or template not in _ANY_FORMAT:
        return NCHW
    if template == "conv":
        if p.get("layout") in (NHWC, NC4HW4):
            return p["layout"]
        if packed and depthwise(op) and shape[1] % 4 == 0:
            return NC4HW4
        if half_conv_nhwc and p["out_dtypes"][0] in ("float16", "bfloat16"):
            # depthwise too: its direct kernel reads neighbouring channels in NHWC, so the
            # tensor-core convs around it (MobileNetV2's) need no reformats
            return (NHWC if (p.get("groups") == 1 or depthwise(op)) and shape[1] % 8 == 0
                    else NCHW)
        if half_conv_nhwc and p["in_dtypes"][:2] in (["int8", "int8"],
                                                     ["float8_e4m3fn", "float8_e4m3fn"]):
            # the INT8 / FP8 tensor-core conv reads 16 channels (16 bytes) at a time, NHWC only
            return NHWC if p.get("groups") == 1 and shape[1] % 16 == 0 else NCHW
        if half_conv_nhwc and p.get("tf32"):  # TF32 tensor cores read 4-channel chunks
            return NHWC if p.get("groups") == 1 and shape[1] % 4 == 0 else NCHW
        return NHWC if conv_nhwc and p.get("groups") == 1 and shape[1] % 4 == 0 else NCHW
    if p.get("dynamic") or len(op.inputs) > 1 and template not in ("concat",):
        return NCHW  # run-time parameter operands are logical
    when = descriptor(template).nhwc_when
    return None if when is None or when(p) else NCHW


def depthwise(op: LaunchOp) -> bool:
    """A conv with one input and one output channel per group (groups = C_in = C_out)."""
    p = attribute_value(op.params)
    x, w = static_shape(op.inputs[0]), static_shape(op.inputs[1])
    return (x is not None and w is not None and len(x) == 4 and len(w) == 4
            and int(p.get("groups", 1)) == x[1] == w[0] and w[1] == 1)


def packable(op: Operation) -> bool:
    """Whether a kernel computes exactly in NC4HW4 with its params in physical terms: every
    channel (pad lanes included) on its own, so that pad lanes never reach a real one."""
    if isinstance(op, ElementwiseOp):
        out = static_shape(op.results[0])
        if out is None or len(out) != 4:
            return False
        for v in op.inputs:
            shape = static_shape(v)
            if shape is None or len(shape) > 4:
                return False
            full = (1,) * (4 - len(shape)) + tuple(shape)
            if int(np.prod(full)) != 1 and full[1] != out[1]:
                return False  # e.g. an [H, W] mask: no per-lane physical form
        return True
    if not isinstance(op, LaunchOp) or is_reformat(op) or not op.inputs:
        return False
    test = descriptor(op.template.data).packable  # conv, pool, concat, reduce
    if test is None:
        return False
    p = attribute_value(op.params)
    shapes = [static_shape(v) for v in op.inputs]
    if shapes[0] is None or len(shapes[0]) != 4 or p.get("dynamic") or op.epilogue_inputs \
            or not all(_rank4(r) for r in op.results):
        return False
    return test(p, shapes)


def is_reformat(op: Operation | Block | None) -> bool:
    return isinstance(op, LaunchOp) and (op.template.data == "reformat" or (
        op.template.data == "transpose" and "reformat" in op.params.data))


def _rank4(v: SSAValue) -> bool:
    shape = static_shape(v)
    return shape is not None and len(shape) == 4


def _fmt(v: SSAValue) -> str:
    return format_of(v) or NCHW


_same_bytes = same_bytes


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


def _reformat_op(v: SSAValue, fmt: str, perm: Sequence[int] | None, label: str,
                 names: list[str]) -> LaunchOp:
    """A reformat of `v` to `fmt`: a `transpose` between NCHW and NHWC (`perm`), else a
    `reformat` launch (packing pads lanes with zeros, unpacking drops them)."""
    out = tensor_type(static_shape(v), element_type_of(v), fmt)
    dtype = dtype_name(v.type)
    io = {"in_shapes": [list(physical_shape(v))], "in_dtypes": [dtype],
          "out_shapes": [list(physical_shape(out))], "out_dtypes": [dtype]}
    if perm is not None:
        template, params = "transpose", {"perm": list(perm), "reformat": label, **io}
    else:
        template = "reformat"
        params = {"reformat": label, "channels": static_shape(v)[1], **io}
    props: dict[str, Attribute] = {"template": StringAttr(template),
                                   "params": to_attribute(params)}
    if names:
        props["origin"] = ArrayAttr([StringAttr(n) for n in names])
    op = LaunchOp.create(operands=[v], result_types=[out], properties=props)
    set_origin(op, names)
    return op


def _reformat_perm(src: str, dst: str) -> list[int] | None:
    if src not in PERMS or dst not in PERMS:
        return None
    inverse = [PERMS[src].index(d) for d in range(4)]
    return [inverse[PERMS[dst][k]] for k in range(4)]


class _Assigner:
    def __init__(self, module: ModuleOp, fn: func.FuncOp, io_formats: set[str],
                 conv_nhwc: bool, packed: bool = False, half_conv_nhwc: bool = False) -> None:
        self.module, self.fn, self.block = module, fn, fn.body.block
        self.io_formats, self.conv_nhwc, self.use_packed = io_formats, conv_nhwc, packed
        self.half_conv_nhwc = half_conv_nhwc
        self.converted: dict[tuple[SSAValue, str], SSAValue] = {}
        self.nhwc: set[Operation | SSAValue] = set()
        self.packed: set[Operation | SSAValue] = set()
        self.packed_weights: set[Operation] = set()
        # choose-formats' decisions (None: the policy decides)
        self.chosen = chosen_formats(fn)

    # -- which kernels (and inputs) run in NC4HW4 / NHWC: per region, where it pays --------------

    def _io_kind(self, fmt: str) -> str:
        return "flex" if fmt in self.io_formats else "fixed"

    def _kind(self, node: Operation | SSAValue) -> str:
        """strong (wants NHWC), flex (any format) or fixed (NCHW) for the NHWC region analysis
        (kernels already packed are fixed: their border costs a reformat either way)."""
        if node in self.packed:
            return "fixed"
        if isinstance(node, SSAValue) or isinstance(node, func.ReturnOp):
            return self._io_kind(NHWC)
        if isinstance(node, ElementwiseOp) or (isinstance(node, LaunchOp)
                                               and not is_reformat(node)):
            pref = preferred_format(node, conv_nhwc=self.conv_nhwc,
                                    half_conv_nhwc=self.half_conv_nhwc)
            return "flex" if pref is None else "strong" if pref == NHWC else "fixed"
        return "fixed"

    def _packed_kind(self, node: Operation | SSAValue) -> str:
        """strong (wants NC4HW4), flex (computes exactly in it) or fixed."""
        if isinstance(node, SSAValue) or isinstance(node, func.ReturnOp):
            return self._io_kind(NC4HW4)
        if not packable(node):
            return "fixed"
        pref = preferred_format(node, conv_nhwc=self.conv_nhwc, packed=True,
                                half_conv_nhwc=self.half_conv_nhwc)
        return "strong" if pref == NC4HW4 else "flex"

    def select(self, fmt: str = NHWC) -> set[Operation | SSAValue]:
        """A region (kernels joined through activations that can change format) runs in `fmt`
        when its `fmt`-preferring kernels outnumber the reformats at its border."""
        kind = self._kind if fmt == NHWC else self._packed_kind
        parent: dict[object, object] = {}

        def root(x: object) -> object:
            while parent.setdefault(x, x) is not x:
                x = parent[x]
            return x

        edges = []
        for v in self._activations(fmt):
            src = v.owner if not isinstance(v.owner, Block) else v
            for use in v.uses:
                user = use.operation
                if isinstance(user, LaunchOp) and user.template.data == "conv" and use.index == 1:
                    continue  # a weight: not an activation edge
                edges.append((v, src, user))
                if kind(src) != "fixed" and kind(user) != "fixed":
                    parent[root(src)] = root(user)
        border: dict[object, set[SSAValue]] = {}
        for v, src, user in edges:
            if (kind(src) == "fixed") != (kind(user) == "fixed"):
                inside = user if kind(src) == "fixed" else src
                border.setdefault(root(inside), set()).add(v)
        nodes = [*self.block.args, *self.block.ops]
        strong = Counter(root(n) for n in nodes if kind(n) == "strong")
        chosen = {r for r, n in strong.items() if n > len(border.get(r, ()))}
        return {n for n in nodes if kind(n) != "fixed" and root(n) in chosen}

    def _activations(self, fmt: str = NHWC) -> list[SSAValue]:
        """4-D values computed at run time whose bytes differ between NCHW and `fmt`."""
        values = [*self.block.args]
        for op in self.block.ops:
            if not isinstance(op, _DATA):
                values.extend(op.results)
        return [v for v in values if _rank4(v) and not _same_bytes(static_shape(v), NCHW, fmt)]

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
            array, recipe = traced_value(v, store)
            if array is None:
                return None  # a module parsed from text: reformat at run time instead
            base = owner.ref.data if isinstance(owner, WeightOp) else "constant"
            array = np.asarray(array).reshape(shape)
            recipe = node("reshape", [recipe], shape=list(shape))
            if fmt == NC4HW4:
                array, recipe = pack(array), node("pack_nc4hw4", [recipe])
            else:
                array = array.transpose(PERMS[fmt])
                recipe = node("transpose", [recipe], perm=list(PERMS[fmt]))
            ref = store.add(f"{base}.{'OHWI' if fmt == NHWC else fmt}",
                            np.ascontiguousarray(array))
            record_recipe(store, ref, recipe)
            new = WeightOp.create(properties={"ref": StringAttr(ref)}, result_types=[t])
        return self._insert_after(v, new)

    def broadcast(self, v: SSAValue, fmt: str, consumer: Operation) -> SSAValue:
        """`v` read with broadcasting against a 4-D result in `fmt`."""
        shape = static_shape(v)
        if shape is None or len(shape) > 4:
            return v
        if fmt == NC4HW4 and int(np.prod(shape)) == 1:
            return v  # a scalar broadcasts over every lane as it is
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

    def _depthwise_weight(self, w: SSAValue) -> SSAValue | None:
        """A depthwise conv weight [C, 1, R, S] as [ceil(C/4), R, S, 4] (a plain 4-D type: no
        format), or None where its values are not known at compile time."""
        if (w, "C4RS4") in self.converted:
            return self.converted[(w, "C4RS4")]
        owner, store = w.owner, weights_of(self.module)
        if not isinstance(owner, WeightOp | ConstantOp):
            return None
        array, recipe = traced_value(w, store)
        if array is None:
            return None
        base = owner.ref.data if isinstance(owner, WeightOp) else "constant"
        array = pack_depthwise_weight(np.asarray(array).reshape(static_shape(w)))
        recipe = node("pack_depthwise", [node("reshape", [recipe], shape=list(static_shape(w)))])
        ref = store.add(f"{base}.C4RS4", array)
        record_recipe(store, ref, recipe)
        new = self._insert_after(w, WeightOp.create(
            properties={"ref": StringAttr(ref)},
            result_types=[tensor_type(array.shape, element_type_of(w))]))
        self.converted[(w, "C4RS4")] = new
        return new

    def run(self) -> None:
        if self.chosen is not None:
            for node, fmt in self.chosen.items():
                if fmt == NC4HW4 and isinstance(node, Operation) and not packable(node):
                    raise PassError(f"assign-layouts: {_describe(node)} was chosen to run in "
                                    "NC4HW4, which it cannot compute in")
                if fmt not in (NCHW, NHWC, NC4HW4):
                    raise PassError(f"assign-layouts: {_describe(node)} has the unknown format "
                                    f"{fmt!r}")
            self.packed = {n for n, f in self.chosen.items() if f == NC4HW4}
            self.nhwc = {n for n, f in self.chosen.items() if f == NHWC}
        else:
            if self.use_packed:
                self.packed = self.select(NC4HW4)
            self.nhwc = self.select(NHWC)
        for arg in self.block.args:
            if _rank4(arg):
                _relabel(arg, NC4HW4 if arg in self.packed else
                         NHWC if arg in self.nhwc else NCHW)
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
                          and _fmt(v) in PERMS
                          and not _same_bytes(static_shape(v), NCHW, NHWC))
        region = NHWC if op in self.nhwc else NCHW
        return max((region, *formats), key=lambda f: (formats[f], f == region))

    def _kernel(self, op: ElementwiseOp | LaunchOp) -> None:
        if op in self.packed:
            fmt = NC4HW4
        elif self.chosen is not None and op in self.chosen:
            fmt = self.chosen[op]
        else:
            pref = preferred_format(op, conv_nhwc=self.conv_nhwc,
                                    half_conv_nhwc=self.half_conv_nhwc)
            if pref == NHWC and op not in self.nhwc or pref == NC4HW4:
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
                elif fmt == NC4HW4 and op.template.data == "conv" and i == 1:
                    # OIHW (GEMM, address functions only) or packed (depthwise)
                    packed = self._depthwise_weight(v) if depthwise(op) else None
                    if packed is not None:
                        op.operands[i] = packed
                        self.packed_weights.add(op)
                    else:
                        op.operands[i] = self.convert(v, NCHW, op)
                elif _rank4(v):
                    op.operands[i] = self.convert(v, fmt, op)
        for r in op.results:
            if _rank4(r):
                _relabel(r, fmt)
        if isinstance(op, LaunchOp) and fmt == NHWC:
            op.properties["params"] = to_attribute(_physical_params(op))
        elif isinstance(op, LaunchOp) and fmt == NC4HW4:
            op.properties["params"] = to_attribute(
                _packed_params(op, op in self.packed_weights))


def _describe(node: Operation | SSAValue) -> str:
    if isinstance(node, SSAValue):
        return f"network input #{node.index}" if isinstance(node.owner, Block) else "a value"
    names = _names(node)
    kind = f"'{node.template.data}'" if isinstance(node, LaunchOp) else node.name
    return f"kernel {kind}" + (f" ({', '.join(names)})" if names else "")


def _physical_params(op: LaunchOp) -> dict:
    """The launch's params for its operands and results in their formats (byte order): the
    shapes here, the rest (`layout`, axes, pads, perm) by its template's descriptor."""
    p = attribute_value(op.params)
    own = len(p.get("in_shapes", []))
    p["in_shapes"] = [list(physical_shape(v)) for v in op.inputs[:own]]
    p["out_shapes"] = [list(physical_shape(r)) for r in op.results]
    rewrite = descriptor(op.template.data).nhwc
    if rewrite is not None:
        rewrite(p, PERMS[_fmt(op.inputs[0])], PERMS.get(_fmt(op.results[0]), PERMS[NCHW]))
    return p


def _packed_params(op: LaunchOp, packed_weight: bool) -> dict:
    """The launch's params for its 4-D operands and results in NC4HW4: physical shapes (axes
    keep their numbers: the lane is a new last axis)."""
    p = attribute_value(op.params)
    own = len(p.get("in_shapes", []))
    p["in_shapes"] = [list(physical_shape(v)) for v in op.inputs[:own]]
    p["out_shapes"] = [list(physical_shape(r)) for r in op.results]
    rewrite = descriptor(op.template.data).packed  # conv, pool: `layout` (conv: `channels`, ...)
    if rewrite is not None:
        rewrite(p, static_shape(op.inputs[0])[1], packed_weight)
    return p


def cancel_reformats(block: Block) -> None:
    """Back-to-back reformats compose: A->B->A disappears, A->B->C becomes one A->C."""
    for op in list(block.ops):
        if not is_reformat(op) or not is_reformat(op.inputs[0].owner):
            continue
        first = op.inputs[0].owner
        source = first.inputs[0]
        src, dst = _fmt(source), _fmt(op.outputs[0])
        if src == dst:  # A->B->A (NC4HW4's pad lanes are don't-care: unpack->pack cancels too)
            op.outputs[0].replace_all_uses_with(source)
            Rewriter.erase_op(op)
        else:
            perm = None
            if first.template.data == op.template.data == "transpose":
                p1, p2 = attribute_value(first.params)["perm"], attribute_value(op.params)["perm"]
                perm = [p1[k] for k in p2]
            else:
                perm = _reformat_perm(src, dst)
            new = _reformat_op(source, dst, perm, f"{src}->{dst}", _names(op))
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
    packed: bool = False
    """Whether kernels may run in the channel-packed NC4HW4 (`PACKED_FORMAT` for builds)."""
    half_conv_nhwc: bool = False
    """Whether FP16/BF16 convs over C % 8 == 0 channels, and FP32 ones allowed TF32 over
    C % 4 == 0, run in NHWC (GPU builds: the tensor-core conv reads 16-byte channel chunks)."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        io_formats = {canonical_format(f) or f.strip().upper()
                      for f in self.io_formats.split(",") if f.strip()}
        for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
            _Assigner(module, fn, io_formats | {NCHW}, self.conv_nhwc, self.packed,
                      self.half_conv_nhwc).run()
            cancel_reformats(fn.body.block)
            results = [v.type for v in fn.body.block.last_op.operands]
            fn.function_type = FunctionType.from_lists(
                [a.type for a in fn.body.block.args], results)


__all__ = ["AssignLayouts", "CPU_CONV_NHWC", "CUDA_CONV_NHWC", "NC4HW4", "NCHW", "NHWC",
           "PACKED_FORMAT", "PERMS", "cancel_reformats", "is_reformat", "packable",
           "physical_shape", "preferred_format"]
