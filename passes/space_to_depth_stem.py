"""space-to-depth-stem: a strided conv over a few-channel image reads it as blocks of pixels.

A network's first conv (ResNet-50's 7x7 stride 2 over 3 channels, padded to 8 by
`pad-conv-channels`) gathers its implicit GEMM's rows 16 bytes at a time from pixels two apart:
each copy uses half a memory sector and one row of the A tile touches 49 of them (0.13 ms of
ResNet-50's 1.6 ms at batch 32 in FP16, on an H100). The same conv over the input rearranged
into 2x2 blocks of pixels (space-to-depth: 4 x 3 = 12 channels, padded to 16) is a 4x4 stride-1
conv with no padding: each tap reads 32 contiguous bytes and neighbouring output pixels read
neighbouring input pixels (0.073 ms on the same H100).

After this pass, a `kernel.launch "conv"` in NHWC with stride 2 (both axes), dilation 1, one
group, FP16/BF16 or INT8 input, a weight the module holds and, as input, the image reformat that
`fold-channel-pad` made (NCHW -> NHWC with `padded_channels`, its only user) of at most 4
channels, reads instead a `reformat` with `space_to_depth = 2` and `pads` (top, left) that
writes the padded blocks, and its weight is rearranged to match (`<weight>.s2d`, with its refit
recipe); its params say stride 1 and no padding. Where that reformat's input is an FP32 ->
half cast of the network's input (assign-precision's), the reformat reads the FP32 input and
converts: one kernel instead of two. INT8 convs (a QDQ model's, over the quantized image,
whose channels fold-qdq pads to 16) are rewritten alike: 12 channels padded to 16, so the stem
reads 16 taps of 16 bytes instead of 49 (its K: 256 instead of 784). GPU builds run it after
fold-channel-pad; static shapes only.

One IEEE difference: an odd kernel (7x7) becomes an even one (4x4 taps of 2x2) whose added taps
have zero weights, so each output also reads one more row and column; a non-finite pixel there
(an FP32 input beyond FP16's range, cast) makes that output NaN (0 x inf) where the stride-2
conv, whose window ends a pixel earlier, stays finite. Finite inputs give the same sums.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import ElementwiseOp, LaunchOp, ScalarOp
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, format_of, shape_of, tensor_type
from ember.dialects.weights import weights_of
from ember.passes.convert_onnx_to_nn.builder import record_recipe, traced_value
from ember.runtime.cpu_kernels.layout import space_to_depth_weight
from ember.runtime.refit_recipes import node

BLOCK = 2  # the stride this pass rewrites (both axes)
# the most image channels it rewrites: a block's (BLOCK x BLOCK pixels) within 16 channels
MAX_CHANNELS = 16 // (BLOCK * BLOCK)
HALVES = ("float16", "bfloat16")
# the input types of tensor-core convs, and their channels per 16-byte chunk
CHUNK = {"float16": 8, "bfloat16": 8, "int8": 16}


def _image_reformat(conv: LaunchOp) -> tuple[LaunchOp, dict] | None:
    """The conv's input and its params where it is fold-channel-pad's reformat (static sizes)
    used by the conv alone."""
    source = conv.inputs[0].owner
    if not isinstance(source, LaunchOp) or source.template.data != "reformat" or \
            conv.inputs[0].uses.get_length() != 1:
        return None
    p = attribute_value(source.params)
    if p.get("reformat") != "NCHW->NHWC" or p.get("padded_channels") is None or \
            p.get("space_to_depth") is not None or \
            not all(isinstance(d, int) for d in p["in_shapes"][0]):
        return None
    return source, p


def _stem(conv: LaunchOp) -> tuple[LaunchOp, dict, dict] | None:
    """(the image reformat, its params, the conv's params) where the pass applies to
    `conv`."""
    if conv.template.data != "conv" or conv.epilogue is not None or len(conv.inputs) < 2:
        return None
    p = attribute_value(conv.params)
    kernel_shape = p["in_shapes"][1]
    if not all(isinstance(d, int) for shape in (*p["in_shapes"][:2], *p["out_shapes"])
               for d in shape):
        return None  # symbolic sizes: the blocks' shape is the conv's output's
    if list(p.get("strides", [])) != [BLOCK, BLOCK] or list(p.get("dilations", [1, 1])) != [1, 1] \
            or int(p.get("groups", 1)) != 1 or p["in_dtypes"][0] not in CHUNK \
            or format_of(conv.inputs[0]) != "NHWC" or len(kernel_shape) != 4 \
            or min(kernel_shape[1:3]) < BLOCK or not isinstance(conv.inputs[1].owner, WeightOp):
        return None
    image = _image_reformat(conv)
    if image is None or int(image[1]["channels"]) > MAX_CHANNELS:
        return None
    return (*image, p)


def _cast_source(value: SSAValue, dtype: str) -> SSAValue | None:
    """The FP32 value `value` is a plain cast of (to `dtype`), where that cast has no other
    user: the reformat can read it and convert."""
    cast = value.owner
    if not isinstance(cast, ElementwiseOp) or value.uses.get_length() != 1 or \
            len(cast.inputs) != 1 or len(cast.results) != 1 or \
            str(element_type_of(cast.inputs[0])) != "f32" or \
            shape_of(cast.inputs[0]) != shape_of(value):
        return None
    ops = [op for op in cast.body.block.ops if isinstance(op, ScalarOp)]
    if len(ops) != 1 or ops[0].fn.data != "cast" or dtype not in HALVES:
        return None
    return cast.inputs[0]


class SpaceToDepthStem(ModulePass):
    name = "space-to-depth-stem"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for conv in [op for op in module.walk() if isinstance(op, LaunchOp)]:
            match = _stem(conv)
            if match is None:
                continue
            weight, recipe = traced_value(conv.inputs[1], store)
            if weight is None:  # a module parsed from text without its weights
                continue
            self._rewrite(conv, *match, weight, recipe, store)

    @staticmethod
    def _rewrite(conv: LaunchOp, reformat: LaunchOp, rp: dict, p: dict, weight, recipe,
                 store) -> None:
        weight_op = conv.inputs[1].owner
        channels = int(rp["channels"])
        n, oh, ow, out_channels = (int(d) for d in p["out_shapes"][0])
        _, kh, kw, _ = (int(d) for d in p["in_shapes"][1])
        th, tw = -(-kh // BLOCK), -(-kw // BLOCK)
        hs, ws = oh + th - 1, ow + tw - 1
        dtype = p["in_dtypes"][0]
        chunk = CHUNK[dtype]
        padded = -(-(BLOCK * BLOCK * channels) // chunk) * chunk
        top, left = (int(x) for x in p["pads"][:2])

        source, in_dtype, cast = reformat.inputs[0], rp["in_dtypes"][0], None
        fp32 = _cast_source(source, dtype)
        if fp32 is not None:
            cast, source, in_dtype = source.owner, fp32, "float32"
        element = element_type_of(conv.inputs[0])
        names = list(dict.fromkeys([*(origin_of(cast) if cast else []), *origin_of(reformat)]))
        props: dict[str, Attribute] = {
            "template": StringAttr("reformat"), "params": to_attribute({
                "reformat": "NCHW->NHWC", "channels": channels, "padded_channels": padded,
                "space_to_depth": BLOCK, "pads": [top, left],
                "in_shapes": rp["in_shapes"], "in_dtypes": [in_dtype],
                "out_shapes": [[n, hs, ws, padded]], "out_dtypes": [dtype]})}
        if names:
            props["origin"] = ArrayAttr([StringAttr(x) for x in names])
        blocks = LaunchOp.create(
            operands=[source], properties=props,
            result_types=[tensor_type([n, padded, hs, ws], element, "NHWC")])
        set_origin(blocks, names)
        Rewriter.insert_op(blocks, InsertPoint.before(reformat))

        array = space_to_depth_weight(weight, BLOCK, channels, padded)
        ref = store.add(f"{weight_op.ref.data}.s2d", array)
        record_recipe(store, ref, node("space_to_depth_weight", [recipe], block=BLOCK,
                                       channels=channels, padded=padded))
        new_weight = WeightOp.create(
            properties={"ref": StringAttr(ref)},
            result_types=[tensor_type([out_channels, padded, th, tw],
                                      element_type_of(conv.inputs[1]), "NHWC")])
        Rewriter.insert_op(new_weight, InsertPoint.before(conv))

        params = dict(p, strides=[1, 1], pads=[0, 0, 0, 0],
                      in_shapes=[[n, hs, ws, padded], [out_channels, th, tw, padded],
                                 *p["in_shapes"][2:]])
        conv.operands[0] = blocks.results[0]
        conv.operands[1] = new_weight.results[0]
        conv.properties["params"] = to_attribute(params)
        for dead in (reformat, cast, weight_op):
            if dead is not None and not dead.results[0].uses:
                Rewriter.erase_op(dead)
