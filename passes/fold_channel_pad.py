"""fold-channel-pad: a channel pad followed by the reformat to NHWC becomes one reformat that
writes the pad lanes.

`pad-conv-channels` zero-pads a tensor-core conv's input to whole 16-byte chunks of channels;
where that input is a network input in NCHW (ResNet-50's and MobileNetV2's images, C = 3 -> 8),
`assign-layouts` then reformats the padded tensor to NHWC: two kernels that together write the
padded tensor twice and read it once (0.09 ms of MobileNetV2's 1.1 ms at batch 32 on the
H200). After this pass a `kernel.launch "pad"` (constant zero, only the channel dim padded at
its end, used once) feeding a `transpose` reformat NCHW->NHWC is one `kernel.launch
"reformat"` {reformat = "NCHW->NHWC", channels = C, padded_channels = C'} of the unpadded
input; so is the NCHW->NHWC transpose of a tensor that is then padded along its NHWC channels
(fold-qdq's pad of an int8 image, which assign-layouts runs after the reformat). Runs after
assign-layouts.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import LaunchOp
from ember.dialects.origin import origin_of, set_origin


def channel_pad(op: LaunchOp, axis: int = 1) -> int | None:
    """The padded channel count of a constant-zero pad of dim `axis`'s end only (the channels:
    1 in NCHW, 3 in NHWC), else None."""
    p = attribute_value(op.params)
    pads = [int(x) for x in p.get("pads", [])]
    in_shape = p["in_shapes"][0]
    if op.template.data != "pad" or p.get("mode") != "constant" or float(p.get("value") or 0) \
            or len(in_shape) != 4 or len(op.inputs) != 1 or len(pads) != 8:
        return None
    end = 4 + axis
    if any(pads[i] for i in range(8) if i != end) or pads[end] <= 0 \
            or not isinstance(in_shape[axis], int):
        return None
    return in_shape[axis] + pads[end]


class FoldChannelPad(ModulePass):
    name = "fold-channel-pad"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in list(module.walk()):
            if not isinstance(op, LaunchOp) or op.parent is None:
                continue
            first = op.inputs[0].owner if op.inputs else None
            if not isinstance(first, LaunchOp) or first.results[0].uses.get_length() != 1:
                continue
            if op.template.data == "transpose":  # pad (NCHW) -> reformat
                pad, transpose, padded = first, op, channel_pad(first)
            elif op.template.data == "pad" and first.template.data == "transpose":
                pad, transpose, padded = op, first, channel_pad(op, axis=3)  # reformat -> pad
            else:
                continue
            params = attribute_value(transpose.params)
            if params.get("reformat") != "NCHW->NHWC" or padded is None:
                continue
            source = attribute_value(first.params)
            new_params = {"reformat": "NCHW->NHWC", "channels": source["in_shapes"][0][1],
                          "padded_channels": padded,
                          "in_shapes": source["in_shapes"],
                          "in_dtypes": source["in_dtypes"],
                          "out_shapes": attribute_value(op.params)["out_shapes"],
                          "out_dtypes": attribute_value(op.params)["out_dtypes"]}
            names = list(dict.fromkeys([*origin_of(pad), *origin_of(transpose)]))
            props: dict[str, Attribute] = {"template": StringAttr("reformat"),
                                           "params": to_attribute(new_params)}
            if names:
                props["origin"] = ArrayAttr([StringAttr(n) for n in names])
            folded = LaunchOp.create(operands=[first.inputs[0]],
                                     result_types=[op.results[0].type], properties=props)
            set_origin(folded, names)
            Rewriter.replace_op(op, folded)
            Rewriter.erase_op(first)
