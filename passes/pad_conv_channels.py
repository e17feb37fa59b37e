"""pad-conv-channels: tensor-core convs get input channels in whole 16-byte chunks.

After this pass no FP16/BF16 `nn.conv` (one group, constant weight) reads a number of input
channels that is not a multiple of 8 — nor an FP32 one marked `tf32` a number that is not a
multiple of 4: its input is zero-padded along the channel axis to the next multiple (an
`nn.pad`) and its weight likewise at build time (a new store entry `<weight>.padC`). The result
is the same (the added channels contribute zero products); what changes is that an NHWC
tensor-core tactic then copies a pixel's channels in 16-byte chunks instead of element by
element (ResNet-50's first conv, C = 3, took 10% of its FP16 run that way). GPU builds run it
after assign-precision.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ember.dialects.nn.base import build
from ember.dialects.nn.linear import ConvOp
from ember.dialects.nn.movement import PadOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.dialects.weights import weights_of
from ember.passes.convert_onnx_to_nn.builder import (
    insert_before,
    make_constant,
    traced_value,
    weight_name,
)
from ember.runtime.refit_recipes import apply, node

# element type -> channels per 16-byte chunk
CHUNK = {"f16": 8, "bf16": 8, "f32": 4}


class PadConvChannels(ModulePass):
    name = "pad-conv-channels"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for conv in [op for op in module.walk() if isinstance(op, ConvOp)]:
            etype = str(element_type_of(conv.output))
            if etype not in CHUNK or etype == "f32" and not conv.prop("tf32", False) \
                    or int(conv.prop("groups", 1)) != 1:
                continue
            shape = shape_of(conv.input)
            if shape is None or len(shape) < 3 or not isinstance(shape[1], int):
                continue
            chunk = CHUNK[etype]
            channels = shape[1]
            padded = -(-channels // chunk) * chunk
            if padded == channels:
                continue
            weight, recipe = traced_value(conv.weight, store)
            if weight is None:
                continue
            extra = [(0, 0)] * weight.ndim
            extra[1] = (0, padded - channels)
            new_w = insert_before(make_constant(apply("pad", [weight], pads=extra), store,
                                                f"{weight_name(conv.weight)}.padC",
                                                node("pad", [recipe], pads=extra)), conv)
            ends = [0] * len(shape)
            ends[1] = padded - channels
            pad = insert_before(build(PadOp, [conv.input], {
                "pads": [0] * len(shape) + ends, "mode": "constant", "value": 0.0}), conv)
            set_origin(pad, origin_of(conv))
            old_w = conv.weight.owner
            conv.operands[0] = pad.output
            conv.operands[1] = new_w.results[0]
            if not old_w.results[0].uses:
                old_w.detach()
                old_w.erase()
