"""fold-channel-pad: a channel pad followed by the reformat to NHWC becomes one reformat that
writes the pad lanes.

`pad-conv-channels` zero-pads a tensor-core conv's input to whole 16-byte chunks of channels;
where that input is a network input in NCHW (ResNet-50's and MobileNetV2's images, C = 3 -> 8),
`assign-layouts` then reformats the padded tensor to NHWC: two kernels that together write the
padded tensor twice and read it once (0.09 ms of MobileNetV2's 1.1 ms at batch 32 on the
H200). After this pass a `kernel.launch "pad"` (constant zero, only the channel dim padded at
its end, used once) feeding a `transpose` reformat NCHW->NHWC is one `kernel.launch
"reformat"` {reformat = "NCHW->NHWC", channels = C, padded_channels = C'} of the unpadded
input. Runs after assign-layouts.
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


def channel_pad(op: LaunchOp) -> int | None:
    """The padded channel count of a constant-zero pad of dim 1's end only, else None."""
    p = attribute_value(op.params)
    pads = [int(x) for x in p.get("pads", [])]
    in_shape = p["in_shapes"][0]
    if op.template.data != "pad" or p.get("mode") != "constant" or float(p.get("value") or 0) \
            or len(in_shape) != 4 or len(op.inputs) != 1 or len(pads) != 8:
        return None
    if any(pads[i] for i in range(8) if i != 5) or pads[5] <= 0 or not isinstance(in_shape[1],
                                                                                   int):
        return None
    return in_shape[1] + pads[5]


class FoldChannelPad(ModulePass):
    name = "fold-channel-pad"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in list(module.walk()):
            if not isinstance(op, LaunchOp) or op.template.data != "transpose":
                continue
            params = attribute_value(op.params)
            pad = op.inputs[0].owner
            if params.get("reformat") != "NCHW->NHWC" or not isinstance(pad, LaunchOp) \
                    or pad.results[0].uses.get_length() != 1:
                continue
            padded = channel_pad(pad)
            if padded is None:
                continue
            pad_params = attribute_value(pad.params)
            new_params = {"reformat": "NCHW->NHWC", "channels": pad_params["in_shapes"][0][1],
                          "padded_channels": padded,
                          "in_shapes": pad_params["in_shapes"],
                          "in_dtypes": pad_params["in_dtypes"],
                          "out_shapes": params["out_shapes"], "out_dtypes": params["out_dtypes"]}
            names = list(dict.fromkeys([*origin_of(pad), *origin_of(op)]))
            props: dict[str, Attribute] = {"template": StringAttr("reformat"),
                                           "params": to_attribute(new_params)}
            if names:
                props["origin"] = ArrayAttr([StringAttr(n) for n in names])
            folded = LaunchOp.create(operands=[pad.inputs[0]],
                                     result_types=[op.results[0].type], properties=props)
            set_origin(folded, names)
            Rewriter.replace_op(op, folded)
            Rewriter.erase_op(pad)
