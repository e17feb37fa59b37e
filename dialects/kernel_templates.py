"""Kernel templates: one descriptor per template, the one place that says what a template is.

A `TemplateDescriptor` declares a template's params (name -> `Param`: its kind, whether it is
required, the values a closed string takes), which kernel op carries it (`kernel.launch`, or
`kernel.elementwise` for scalar regions), how it behaves when assign-layouts gives its 4-D
operands another format (`Layout`, and the functions that rewrite its params for NHWC / NC4HW4),
whether it takes an epilogue, its numpy reference (the runtime's CPU kernel) and its CUDA emitter
(a module of `ember.codegen.templates`, named as text: dialects do not import codegen; codegen
resolves it). `kernel.launch`'s verifier checks its params against its template's descriptor
(`check_launch`), so IR that parses, and every pass's output, has typed params.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    i64,
)
from xdsl.ir import Attribute
from xdsl.utils.exceptions import VerifyException

from ember.dialects.dtypes import numpy_dtype, numpy_dtype_names
from ember.dialects.tensor_types import element_type_of
from ember.errors import EmberError
from ember.runtime.cpu_kernels import KERNELS, Kernel
from ember.runtime.cpu_kernels.functions import BINARY, UNARY
from ember.runtime.cpu_kernels.movement import PAD_MODES, RESIZE_MODES, SCATTER_REDUCTIONS
from ember.runtime.cpu_kernels.reduction import REDUCE_FUNCTIONS
from ember.runtime.cpu_kernels.sampling import MODES as SAMPLE_MODES
from ember.runtime.cpu_kernels.sampling import PADDING_MODES
from ember.runtime.formats import FORMATS, NC4HW4, NCHW, NHWC, PERMS

# -- kinds of param values ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """What a param's attribute must be: `text` says it in errors, `test` checks it."""

    text: str
    test: Callable[[Attribute], bool] = field(repr=False, compare=False)


def _is_bool(a: Attribute) -> bool:
    return isinstance(a, IntegerAttr) and isinstance(a.type, IntegerType) \
        and a.type.width.data == 1


def _is_int(a: Attribute) -> bool:
    return isinstance(a, IntegerAttr) and not _is_bool(a)


def _is_dim(a: Attribute) -> bool:
    """A dim: an int, or a symbolic one ("N", "768*N"); an unknown dim ("?") cannot run."""
    return _is_int(a) or isinstance(a, StringAttr) and a.data != "" and "?" not in a.data


def _is_shape(a: Attribute) -> bool:
    if isinstance(a, DenseArrayBase):  # a static shape (an empty one for scalars)
        return a.elt_type == i64
    return isinstance(a, ArrayAttr) and all(_is_dim(d) for d in a.data)


DTYPE_NAMES = numpy_dtype_names()

INT = Kind("an int (i64)", _is_int)
FLOAT = Kind("a float", lambda a: isinstance(a, FloatAttr))
BOOL = Kind("a bool", _is_bool)
NUMBER = Kind("a number or bool", lambda a: isinstance(a, IntegerAttr | FloatAttr))
STR = Kind("a string", lambda a: isinstance(a, StringAttr))
DTYPE = Kind("a dtype name", lambda a: isinstance(a, StringAttr) and a.data in DTYPE_NAMES)
INTS = Kind("an int list (array<i64: ...>)",
            lambda a: isinstance(a, DenseArrayBase) and a.elt_type == i64)
FLOATS = Kind("a number list (array<f64: ...>)", lambda a: isinstance(a, DenseArrayBase))
STRS = Kind("a string list", lambda a: isinstance(a, ArrayAttr)
            and all(isinstance(s, StringAttr) for s in a.data))
def _empty(a: Attribute) -> bool:
    """An empty list (as its attribute prints: `array<i64>`): an op without results has none."""
    return isinstance(a, DenseArrayBase) and len(a) == 0


SHAPES = Kind("a shape list (one entry per tensor, each array<i64: ...> or a list of ints and "
              "symbolic dims such as \"768*N\")",
              lambda a: _empty(a) or isinstance(a, ArrayAttr) and all(_is_shape(s)
                                                                      for s in a.data))
ATTRS = Kind("a dictionary of attribute values", lambda a: isinstance(a, DictionaryAttr))
DTYPES = Kind(f"a dtype name list ({', '.join(sorted(DTYPE_NAMES))})",
              lambda a: _empty(a) or isinstance(a, ArrayAttr)
              and all(isinstance(s, StringAttr) and s.data in DTYPE_NAMES for s in a.data))


def list_of(kind: Kind) -> Kind:
    return Kind(f"a list of {kind.text}", lambda a: isinstance(a, ArrayAttr)
                and all(kind.test(x) for x in a.data))


def dict_of(fields: Mapping[str, Param]) -> Kind:
    """A nested dictionary with declared fields."""
    text = "a dictionary {" + ", ".join(
        f"{k}{'' if p.required else '?'}" for k, p in fields.items()) + "}"
    return Kind(text, lambda a: isinstance(a, DictionaryAttr) and _fields_problem(
        a.data, fields) is None)


@dataclass(frozen=True)
class Param:
    """One param: its kind, whether every instance has it, and for a string the values it may
    take (None: any)."""

    kind: Kind
    required: bool = False
    values: tuple[str, ...] | None = None

    def problem(self, attr: Attribute) -> str | None:
        """What is wrong with `attr` as this param (None: nothing)."""
        if not self.kind.test(attr):
            return f"must be {self.kind.text}, got {attr}"
        if self.values is not None and attr.data not in self.values:  # type: ignore[attr-defined]
            return f"must be one of {', '.join(self.values)}, got \"{attr.data}\""  # type: ignore
        return None


def _fields_problem(data: Mapping[str, Attribute], fields: Mapping[str, Param]) -> str | None:
    for key, attr in data.items():
        param = fields.get(key)
        if param is None:
            return f"unknown key '{key}'"
        problem = param.problem(attr)
        if problem is not None:
            return f"'{key}' {problem}"
    missing = [k for k, p in fields.items() if p.required and k not in data]
    return f"missing '{missing[0]}'" if missing else None


def req(kind: Kind, values: Sequence[str] | None = None) -> Param:
    return Param(kind, True, None if values is None else tuple(values))


def opt(kind: Kind, values: Sequence[str] | None = None) -> Param:
    return Param(kind, False, None if values is None else tuple(values))


# -- layouts ------------------------------------------------------------------------------------


class Layout(enum.Enum):
    """How a template meets its 4-D operands' formats (assign-layouts)."""

    NCHW_ONLY = "nchw-only"
    """Reads logical NCHW: assign-layouts gives it NCHW operands (reformats where needed)."""
    NHWC_FORM = "nhwc-form"
    """Has kernels of its own for NHWC (and NC4HW4), chosen by its `layout` param."""
    PHYSICAL = "physical"
    """Layout-agnostic: runs in its operands' format with shapes and axes in byte order."""
    REFORMAT = "reformat"
    """Converts between formats; its params name both."""


# Each rewrites a launch's params (already with physical in/out shapes) for operands in NHWC:
# `perm` is the input's format permutation (physical dim k = logical dim perm[k]), `out_perm`
# the result's. Each packed one does the same for NC4HW4 given the logical channel count.
NhwcRewrite = Callable[[dict[str, Any], Sequence[int], Sequence[int]], None]
PackedRewrite = Callable[[dict[str, Any], int, bool], None]
# Whether a layout-agnostic instance (its logical params) has an NHWC form at all.
NhwcWhen = Callable[[dict[str, Any]], bool]
# Whether an instance computes exactly in NC4HW4 (every channel, pad lanes included, on its
# own): its logical params and its own operands' static shapes (None where not static); the
# pass has checked what every template needs (a 4-D first operand and results, no run-time
# parameters, no epilogue inputs).
Packable = Callable[[dict[str, Any], list[tuple[int, ...] | None]], bool]


def _nhwc_layout(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    p["layout"] = NHWC


def _nhwc_axis(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    p["axis"] = perm.index(int(p["axis"]) % 4)


def _nhwc_axes(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    p["axes"] = sorted(perm.index(int(a) % 4) for a in p["axes"])


def _nhwc_slice(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    for key in ("starts", "ends", "steps"):
        p[key] = [p[key][d] for d in perm]


def _nhwc_pad(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    pads = p["pads"]
    p["pads"] = [pads[d] for d in perm] + [pads[4 + d] for d in perm]


def _nhwc_transpose(p: dict[str, Any], perm: Sequence[int], out_perm: Sequence[int]) -> None:
    inverse = [perm.index(d) for d in range(4)]
    p["perm"] = [inverse[int(p["perm"][out_perm[k]])] for k in range(4)]


def _reduce_nhwc_when(p: dict[str, Any]) -> bool:
    """A reduce that drops its axes keeps the others' order in NHWC only where the kept dims
    are in NHWC order already."""
    if p.get("keepdims"):
        return True
    kept = [d for d in range(4) if d not in [a % 4 for a in p["axes"]]]
    return [d for d in PERMS[NHWC] if d in kept] == kept


def _rank4(shape: tuple[int, ...] | None) -> bool:
    return shape is not None and len(shape) == 4


def _conv_packable(p: dict[str, Any], shapes: list[tuple[int, ...] | None]) -> bool:
    return len(shapes) in (2, 3) and "layout" not in p and _rank4(shapes[1])


def _pool_packable(p: dict[str, Any], shapes: list[tuple[int, ...] | None]) -> bool:
    return len(shapes) == 1 and "layout" not in p


def _concat_packable(p: dict[str, Any], shapes: list[tuple[int, ...] | None]) -> bool:
    """Along H or W; along C only where no input has pad lanes."""
    axis = int(p["axis"]) % 4
    return all(_rank4(s) for s in shapes) and (
        axis in (2, 3) or axis == 1 and all(s[1] % 4 == 0 for s in shapes))  # type: ignore


def _reduce_packable(p: dict[str, Any], shapes: list[tuple[int, ...] | None]) -> bool:
    """Over N, H or W with the dims kept (the lanes are never reduced together)."""
    axes = [int(a) % 4 for a in p.get("axes") or []]
    return len(shapes) == 1 and bool(p.get("keepdims")) and bool(axes) and 1 not in axes


def _packed_pool(p: dict[str, Any], channels: int, packed_weight: bool) -> None:
    p["layout"] = NC4HW4


def _packed_conv(p: dict[str, Any], channels: int, packed_weight: bool) -> None:
    """Conv in NC4HW4 keeps its logical channel count; a depthwise weight packed by
    assign-layouts is [ceil(C/4), R, S, 4] (`weight_layout = "C4RS4"`), else OIHW."""
    p["layout"] = NC4HW4
    p["channels"] = channels
    if packed_weight:
        p["weight_layout"] = "C4RS4"


# -- the descriptors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateDescriptor:
    """One kernel template: its params, its kernel op, its layout behaviour, its numpy reference
    (`ember.runtime.cpu_kernels`) and its CUDA emitter module (None: it runs on the host)."""

    name: str
    params: Mapping[str, Param]
    reference: Kernel = field(repr=False)
    emitter: str | None = None
    layout: Layout = Layout.NCHW_ONLY
    nhwc: NhwcRewrite | None = field(default=None, repr=False)
    nhwc_when: NhwcWhen | None = field(default=None, repr=False)  # None: always
    packable: Packable | None = field(default=None, repr=False)  # None: never
    packed: PackedRewrite | None = field(default=None, repr=False)
    epilogue: bool = False  # fuse-epilogues may give it an epilogue region
    # its emitter module offers `tactics(params, arch, sms)` (select-tactics ranks and times
    # them), and a symbolic instance also gets kernels tuned for the profile's small shapes
    tactics: bool = False
    op: str = "kernel.launch"
    required: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required",
                           tuple(k for k, p in self.params.items() if p.required))


# every instance has the static shapes and dtypes of its operands and results
IO: dict[str, Param] = {"in_shapes": req(SHAPES), "in_dtypes": req(DTYPES),
                        "out_shapes": req(SHAPES), "out_dtypes": req(DTYPES)}
# ops with optional run-time parameter operands name those present (nn ops' `DYNAMIC`);
# convert-nn-to-kernel plans only their constant forms, nn's evaluate() passes them
DYNAMIC: dict[str, Param] = {"dynamic": opt(STRS)}
# a conv / matmul / einsum / attention assign-precision allows TF32 tensor cores
TF32: dict[str, Param] = {"tf32": opt(BOOL)}
# nn.rnn / nn.lstm: ONNX's attributes, the cell, and the optional operands present
_RECURRENT: dict[str, Param] = {
    "cell": req(STR, ("rnn", "gru", "lstm")), "optional": opt(STRS), "hidden_size": req(INT),
    "direction": req(STR, ("forward", "reverse", "bidirectional")), "layout": opt(INT),
    "activations": opt(STRS), "activation_alpha": opt(FLOATS), "activation_beta": opt(FLOATS),
    "clip": opt(FLOAT), "linear_before_reset": opt(INT), "input_forget": opt(INT)}
REFORMATS = tuple(f"{a}->{b}" for a in FORMATS for b in FORMATS if a != b)
_CONV = {"strides": req(INTS), "pads": req(INTS), "dilations": req(INTS), "groups": req(INT)}
_REGION_OP = dict_of({"fn": req(STR), "args": req(INTS), "dtype": req(DTYPE),
                      "alpha": opt(FLOAT), "beta": opt(FLOAT)})
_REGION = dict_of({"ops": req(list_of(_REGION_OP)), "result": req(INT)})
# an elementwise input read through strides (fuse-strided-reads): kernel.elementwise's `views`
_VIEW = dict_of({"input": req(INT), "offset": req(INT), "strides": req(INTS)})


def _emitter(module: str) -> str:
    return f"ember.codegen.templates.{module}"


def _template(name: str, params: Mapping[str, Param], *, cuda: str | None = "",
              **kw: Any) -> TemplateDescriptor:
    """A descriptor: params plus IO; `cuda` names the emitter module ("" : the template's name,
    None: no CUDA kernel); the reference is the CPU executor's kernel of that name."""
    emitter = None if cuda is None else _emitter(cuda or name)
    return TemplateDescriptor(name, {**params, **IO}, KERNELS[name], emitter, **kw)


_DESCRIPTORS = [
    # linear algebra
    _template("conv", {**_CONV, **TF32,
                       "layout": opt(STR, FORMATS), "channels": opt(INT),
                       "weight_layout": opt(STR, ("C4RS4",)),
                       # fuse-shortcut-convs': a second input's 1x1 conv summed in (NHWC), or
                       # (INT8, `sums`) its sums kept apart as that epilogue input's value
                       "shortcut": opt(dict_of({"strides": req(INTS), "sums": opt(INT)}))},
              layout=Layout.NHWC_FORM, nhwc=_nhwc_layout, packable=_conv_packable,
              packed=_packed_conv, epilogue=True, tactics=True),
    _template("matmul", {"transpose_a": opt(BOOL), "transpose_b": opt(BOOL), **TF32},
              epilogue=True, tactics=True),
    _template("conv_transpose", {**_CONV, "output_padding": opt(INTS), **TF32}),
    _template("einsum", {"equation": req(STR), **TF32}),
    _template("attention", {"num_heads": req(INT), "head_dim": req(INT), "scale": req(FLOAT),
                            "q_offset": opt(INT), "k_offset": opt(INT), "v_offset": opt(INT),
                            "masked_value": opt(FLOAT), **TF32}),
    # fuse-attention-kernels: the kernels of an attention chain that fuse-attention left apart
    # (Q/DQ inside), run as one; each stage is a replaced kernel with its template and params
    _template("attention_chain", {"stages": req(list_of(dict_of({
        "name": req(STR), "template": req(STR), "inputs": req(STRS), "params": req(ATTRS)})))},
              tactics=True),
    # reductions and normalizations
    _template("reduce", {"fn": req(STR, REDUCE_FUNCTIONS), "axes": opt(INTS),
                         "keepdims": req(BOOL), **DYNAMIC},
              layout=Layout.PHYSICAL, nhwc=_nhwc_axes, nhwc_when=_reduce_nhwc_when,
              packable=_reduce_packable),
    _template("arg_reduce", {"fn": req(STR, ("max", "min")), "axis": req(INT),
                             "keepdims": req(BOOL), "select_last_index": req(BOOL)}),
    _template("grid_sample", {"mode": req(STR, SAMPLE_MODES),
                              "padding_mode": req(STR, PADDING_MODES),
                              "align_corners": req(BOOL)}),
    _template("dft", {"axis": opt(INT), "dft_length": opt(INT), "inverse": req(BOOL),
                      "onesided": req(BOOL), **DYNAMIC}, cuda=None),
    _template("stft", {"onesided": req(BOOL), **DYNAMIC}, cuda=None),
    _template("rnn", _RECURRENT),
    _template("lstm", _RECURRENT, cuda="rnn"),
    _template("reverse_sequence", {"batch_axis": req(INT), "time_axis": req(INT)}, cuda=None),
    _template("det", {}, cuda=None),
    # data-dependent result lengths: the step binds its `size` symbol (a host step)
    _template("nonzero", {"size": req(STR)}, cuda=None),
    _template("compress", {"axis": opt(INT), "size": req(STR)}, cuda=None),
    _template("unique", {"axis": opt(INT), "sorted": req(BOOL), "size": req(STR)}, cuda=None),
    _template("non_max_suppression", {"center_point_box": req(INT), "size": req(STR)},
              cuda=None),
    _template("topk", {"k": opt(INT), "axis": req(INT), "largest": req(BOOL), **DYNAMIC}),
    _template("softmax", {"axis": req(INT), "log": req(BOOL)},
              layout=Layout.PHYSICAL, nhwc=_nhwc_axis, epilogue=True),
    _template("pool", {"fn": req(STR, ("max", "avg", "lp")), "kernel": req(INTS),
                       "strides": req(INTS), "pads": req(INTS), "dilations": req(INTS),
                       "ceil_mode": req(BOOL), "count_include_pad": opt(BOOL), "p": opt(FLOAT),
                       "layout": opt(STR, FORMATS)},
              layout=Layout.NHWC_FORM, nhwc=_nhwc_layout, packable=_pool_packable,
              packed=_packed_pool),
    _template("max_pool_indices", {"kernel": req(INTS), "strides": req(INTS),
                                   "pads": req(INTS), "dilations": req(INTS),
                                   "ceil_mode": req(BOOL), "storage_order": req(INT)}),
    _template("max_unpool", {"kernel": req(INTS), "strides": req(INTS), "pads": req(INTS),
                             "output_shape": opt(INTS), "windowed": opt(BOOL), **DYNAMIC}),
    _template("tensor_scatter", {"axis": req(INT), "mode": req(STR, ("linear", "circular"))}),
    _template("roi_align", {"mode": req(STR, ("avg", "max")),
                            "coordinate_transformation_mode":
                                req(STR, ("half_pixel", "output_half_pixel")),
                            "output_height": req(INT), "output_width": req(INT),
                            "sampling_ratio": req(INT), "spatial_scale": req(FLOAT)}),
    _template("deform_conv", {"present": opt(STRS), "strides": req(INTS), "pads": req(INTS),
                              "dilations": req(INTS), "group": req(INT),
                              "offset_group": req(INT)}),
    _template("col2im", {"image_shape": req(INTS), "block_shape": opt(INTS),
                         "strides": req(INTS), "pads": req(INTS), "dilations": req(INTS),
                         **DYNAMIC}),
    _template("assert", {"message": req(STR)}, cuda=None),
    _template("batch_norm", {"epsilon": req(FLOAT)}),
    _template("layer_norm", {"axis": req(INT), "epsilon": req(FLOAT), "rms": opt(BOOL)},
              epilogue=True, tactics=True),
    _template("group_norm", {"groups": req(INT), "epsilon": req(FLOAT)}),
    _template("lrn", {"size": req(INT), "alpha": req(FLOAT), "beta": req(FLOAT),
                      "bias": req(FLOAT)}),
    _template("cumsum", {"axis": opt(INT), "exclusive": req(BOOL), "reverse": req(BOOL),
                         "product": opt(BOOL), **DYNAMIC}),
    # data movement
    _template("transpose", {"perm": req(INTS),
                            "reformat": opt(STR, (f"{NCHW}->{NHWC}", f"{NHWC}->{NCHW}"))},
              layout=Layout.PHYSICAL, nhwc=_nhwc_transpose),
    _template("slice", {"starts": opt(INTS), "ends": opt(INTS), "steps": opt(INTS), **DYNAMIC},
              layout=Layout.PHYSICAL, nhwc=_nhwc_slice),
    _template("concat", {"axis": req(INT)}, layout=Layout.PHYSICAL, nhwc=_nhwc_axis,
              packable=_concat_packable),
    _template("pad", {"pads": opt(INTS), "mode": req(STR, PAD_MODES), "value": opt(FLOAT),
                      **DYNAMIC},
              layout=Layout.PHYSICAL, nhwc=_nhwc_pad),
    _template("gather", {"axis": req(INT)}),
    _template("gather_elements", {"axis": req(INT)}),
    _template("scatter_elements", {"axis": req(INT), "reduction": req(STR, SCATTER_REDUCTIONS)},
              cuda=None),
    _template("scatter_nd", {"reduction": req(STR, SCATTER_REDUCTIONS)}, cuda=None),
    _template("gather_nd", {"batch_dims": req(INT)}),
    _template("expand", DYNAMIC),
    _template("tile", {"repeats": opt(INTS), **DYNAMIC}),
    _template("resize", {
        "mode": req(STR, RESIZE_MODES),
        "coordinate_transformation_mode": opt(STR, (
            "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
            "asymmetric", "tf_crop_and_resize")),
        "nearest_mode": opt(STR, ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")),
        "cubic_coeff_a": opt(FLOAT), "exclude_outside": opt(BOOL),
        "extrapolation_value": opt(FLOAT), "antialias": opt(BOOL), "scales": opt(FLOATS),
        "sizes": opt(INTS), "roi": opt(FLOATS), "axes": opt(INTS),
        "keep_aspect_ratio_policy": opt(STR, ("stretch", "not_larger", "not_smaller")),
        **DYNAMIC}),
    _template("trilu", {"upper": req(BOOL), "k": opt(INT), **DYNAMIC}),
    # its module is range_: a module `range` would shadow the builtin there
    _template("range", {"declared": opt(BOOL)}, cuda="range_"),
    _template("fill", {"value": req(NUMBER)}),
    _template("shape_of", {"start": opt(INT), "end": opt(INT)}),
    _template("reshape", {"allowzero": opt(BOOL)}, cuda=None),
    _template("squeeze", DYNAMIC, cuda=None),
    _template("unsqueeze", DYNAMIC, cuda=None),
    # quantization
    _template("quantize", {"axis": opt(INT), "block_size": opt(INT), "saturate": opt(BOOL),
                           "to": opt(DTYPE)}),
    _template("dequantize", {"axis": opt(INT), "block_size": opt(INT), "to": opt(DTYPE)}),
    # a registered plugin (ember.plugin): its name, version and attribute values; its kernel
    # is the plugin's CUDA C, its reference the one the loading process registers
    _template("plugin", {"plugin": req(STR), "version": req(STR), "attrs": req(ATTRS),
                         "arrays": opt(ATTRS)}),
    # formats: between NCHW and NHWC a reformat is a `transpose` (params `reformat`, `perm`);
    # from or to NC4HW4 it is this, with the logical channel count (`padded_channels`: the
    # NHWC result's channels, zeros after `channels`, where fold-channel-pad folded a pad;
    # `space_to_depth` with `pads` (top, left): NCHW -> NHWC blocks of that many pixels a side,
    # space-to-depth-stem's, which may read FP32 and store a half type)
    _template("reformat", {"reformat": req(STR, REFORMATS), "channels": req(INT),
                           "padded_channels": opt(INT), "space_to_depth": opt(INT),
                           "pads": opt(INTS)},
              layout=Layout.REFORMAT),
    # scalar regions: kernel.elementwise ops (a plan step's `region` over numbered values);
    # the single-op forms are the nn ops' own semantics (nn's evaluate()), fused into regions
    _template("elementwise", {"region": req(_REGION), "in_views": opt(list_of(_VIEW))},
              layout=Layout.PHYSICAL,
              op="kernel.elementwise"),
    _template("unary", {"fn": req(STR, tuple(UNARY)), "alpha": opt(FLOAT), "beta": opt(FLOAT)},
              cuda=None, layout=Layout.PHYSICAL, op="kernel.elementwise"),
    _template("binary", {"fn": req(STR, tuple(BINARY))}, cuda=None, layout=Layout.PHYSICAL,
              op="kernel.elementwise"),
    _template("select", {}, cuda=None, layout=Layout.PHYSICAL, op="kernel.elementwise"),
    _template("bitcast", {"to": req(DTYPE)}),
    _template("cast", {"to": req(DTYPE), "saturate": opt(BOOL)}, cuda=None, layout=Layout.PHYSICAL,
              op="kernel.elementwise"),
]

TEMPLATES: dict[str, TemplateDescriptor] = {d.name: d for d in _DESCRIPTORS}
# the templates a kernel.launch runs
LAUNCH_TEMPLATES = tuple(t for t, d in TEMPLATES.items() if d.op == "kernel.launch")


def descriptor(template: str) -> TemplateDescriptor:
    """The descriptor of a template; KeyError naming the known ones where there is none."""
    d = TEMPLATES.get(template)
    if d is None:
        raise KeyError(f"unknown kernel template '{template}' (templates: "
                       f"{', '.join(sorted(TEMPLATES))})")
    return d


_DTYPE_OF: dict[Attribute, str] = {}


def _dtype_of(t: Attribute) -> str:
    """The dtype name of a tensor type's element type (its text where it has none)."""
    element = element_type_of(t)
    name = _DTYPE_OF.get(element)
    if name is None:
        try:
            name = numpy_dtype(element).name
        except EmberError:
            name = str(element)
        _DTYPE_OF[element] = name
    return name


def check_launch(template: str, params: DictionaryAttr, inputs: Sequence[Attribute],
                 outputs: Sequence[Attribute], epilogue_inputs: int | None) -> None:
    """VerifyException unless `params` are what `template` declares: no unknown key, every
    required one, each of its kind (and closed strings one of their values), one in_shape /
    in_dtype per own operand (those before an epilogue's extra inputs) and one out_shape /
    out_dtype per result, the dtypes the operands' and results' element types (but for the
    result of an epilogue, which may cast). `inputs` / `outputs`: the operand and result types;
    `epilogue_inputs`: None without an epilogue region."""
    d = TEMPLATES.get(template)
    where = f"kernel.launch '{template}'"
    if d is None:
        raise VerifyException(f"kernel.launch: unknown template '{template}' (templates: "
                              f"{', '.join(sorted(LAUNCH_TEMPLATES))})")
    if d.op != "kernel.launch":
        raise VerifyException(f"{where}: this template is a {d.op} op, not a launch")
    data = params.data
    declared = d.params
    for key, attr in data.items():
        param = declared.get(key)
        if param is None:
            raise VerifyException(f"{where}: unknown param '{key}' ({template} takes: "
                                  f"{', '.join(sorted(declared))})")
        problem = param.problem(attr)
        if problem is not None:
            raise VerifyException(f"{where}: param '{key}' {problem}")
    for key in d.required:
        if key not in data:
            raise VerifyException(f"{where}: missing required param '{key}' "
                                  f"({declared[key].kind.text})")
    if epilogue_inputs is not None and not d.epilogue:
        raise VerifyException(f"{where}: this template takes no epilogue (those that do: "
                              f"{', '.join(t for t, x in TEMPLATES.items() if x.epilogue)})")
    own = len(inputs) - (epilogue_inputs or 0)
    for key, want in (("in_shapes", own), ("in_dtypes", own), ("out_shapes", len(outputs)),
                      ("out_dtypes", len(outputs))):
        have = len(data[key])  # type: ignore[arg-type]
        if have != want:
            raise VerifyException(f"{where}: param '{key}' has {have} entries for {want} "
                                  f"{'operand' if key.startswith('in') else 'result'}(s)")
    checked = [("in_dtypes", inputs[:own])]
    if epilogue_inputs is None:
        checked.append(("out_dtypes", outputs))
    for key, types in checked:
        names = [] if _empty(data[key]) else data[key]
        for i, (name, t) in enumerate(zip(names, types, strict=True)):  # type: ignore
            if name.data != _dtype_of(t):  # type: ignore[attr-defined]
                what = "operand" if key == "in_dtypes" else "result"
                raise VerifyException(f"{where}: param '{key}' says {what} #{i} is "
                                      f"\"{name.data}\", but its type is {t}")  # type: ignore


__all__ = ["ATTRS", "BOOL", "DTYPES", "FLOAT", "INT", "INTS", "LAUNCH_TEMPLATES", "SHAPES", "STR",
           "TEMPLATES", "Kind", "Layout", "Param", "TemplateDescriptor", "check_launch",
           "descriptor"]
