"""fuse-shortcut-convs' INT8 form: a QDQ ResNet block's downsample conv computed by the conv3
whose residual it is, its sums kept apart.

In a QDQ model each conv's result is quantized on its own before the Add reads it:
`Q(relu(DQ(Q(conv3(y) * s3 + b3)) + DQ(Q(convd(x, stride) * sd + bd))))`, so the two convs
cannot share one sum as the FP16 form does. The INT8 form runs both GEMMs in one kernel over
the same output tile, one after the other (the downsample's first), and keeps the downsample's
int32 sums beside conv3's: no downsample kernel, no round trip of its int8 result (ResNet-50
b32 INT8 on an H100: the four downsample convs took 0.075 ms, and their results 48 MB of
conv3's reads).

The fused launch: operands (y, W, extras...), W = [Wd | W3] along the input channels (the
downsample's first), in_shapes [y, W]; params `shortcut = {strides, sums: k}`: extra operand k
is x, the downsample's input, and the epilogue's value k + 1 is not x's element but the
downsample's int32 sum for the output element, over x read every `strides`-th pixel. The
epilogue region is the downsample's epilogue on that sum (its extras appended as operands),
then conv3's, which reads the downsample's quantized result where it read the residual.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, StringAttr, i32
from xdsl.ir import Block, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ember.codegen.kernel_step import kernel_step, plan_shape
from ember.codegen.templates import conv as conv_template
from ember.codegen.templates import epilogue_split
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import LaunchOp, ViewOp, YieldOp
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.origin import kernel_origin, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of, tensor_type
from ember.dialects.weights import WeightStore
from ember.errors import UnsupportedError


def weight_op(value: SSAValue) -> WeightOp | None:
    """The weight op behind a conv's weight or bias (itself, or under a `kernel.view`)."""
    op = value.owner
    if isinstance(op, ViewOp):
        op = op.input.owner
    return op if isinstance(op, WeightOp) else None


def byte_1x1(conv: object, store: WeightStore) -> dict | None:
    """The params of an INT8 1x1 NHWC conv of one group (int32 sums, no padding or dilation,
    static sizes, its weight in the store) whose epilogue ends in a cast to int8; None
    otherwise."""
    if not isinstance(conv, LaunchOp) or conv.template.data != "conv" or conv.epilogue is None:
        return None
    p = attribute_value(conv.params)
    shapes = [*p["in_shapes"], *p["out_shapes"]]
    block = conv.epilogue.block
    if p.get("layout") != "NHWC" or p.get("shortcut") is not None or int(p["groups"]) != 1 \
            or len(p["in_shapes"]) != 2 or list(p["in_shapes"][1][1:3]) != [1, 1] \
            or any(p["pads"]) or list(p["dilations"]) != [1, 1] \
            or list(p["in_dtypes"]) != ["int8", "int8"] or list(p["out_dtypes"]) != ["int32"] \
            or any(not isinstance(d, int) for s in shapes for d in s) \
            or not isinstance(block.last_op, YieldOp) \
            or str(block.last_op.value.type) != "i8" \
            or weight_op(conv.inputs[1]) is None or weight_op(conv.inputs[1]).ref.data not in store:
        return None
    return p


def _local(values: list[SSAValue], out_shape: list[int]) -> bool:
    """Whether every value is one element or a per-column vector of the output (what a
    thread reads for its own outputs without a tile of it)."""
    for v in values:
        shape = shape_of(v)
        if shape is None or any(not isinstance(d, int) for d in shape):
            return False
        shape = plan_shape(v, {})  # (in the buffer's byte order, as the params' shapes)
        if not (all(d == 1 for d in shape) or epilogue_split.per_column(list(shape), out_shape)):
            return False
    return True


# the most input channels (bytes of K) the fused GEMM may sum over: ResNet-50 b32 on an H100
# (session 30, Nsight Compute): layer1's pair (64 + 64) fused 53.7 us against 63 apart; layer2's
# (128 + 256) 50.6 against ~47, layer3's (256 + 512) 39.8 against ~33, layer4's (512 + 1024)
# 40.3 against ~27 — a long K on the fused form's mma.sync tiles loses to the wgmma ones
MAX_K = 256


def find(conv: LaunchOp, store: WeightStore) -> tuple[int, LaunchOp] | None:
    """(k, the downsample conv) where `conv` is an INT8 1x1 stride-1 conv whose epilogue reads
    extra input k, of its output's shape and int8, from another INT8 1x1 conv (any stride)
    that nothing else reads, both convs' other epilogue inputs one-element or per-column, the
    downsample's input channels a multiple of 64 (its K ends on a k-tile) and conv3's of 16,
    and both results quantized to int8 (a block whose output a table dequantizes, a model's
    last, cannot stage its bytes: tabulate-int8-chains, after this pass, writes that table),
    the two convs' input channels together at most `MAX_K`."""
    p = byte_1x1(conv, store)
    if p is None or list(p["strides"]) != [1, 1] or p["in_shapes"][0][-1] % 16:
        return None
    out_shape = list(p["out_shapes"][0])
    extras = list(conv.epilogue_inputs)
    args = list(conv.epilogue.block.args[1:])
    for k, (value, arg) in enumerate(zip(extras, args, strict=True)):
        short = value.owner
        if str(arg.type) != "i8" or value.uses.get_length() != 1 \
                or sum(v is value for v in extras) != 1:
            continue
        q = byte_1x1(short, store)
        if q is None or list(q["out_shapes"][0]) != out_shape or q["in_shapes"][0][-1] % 64 \
                or p["in_shapes"][0][-1] + q["in_shapes"][0][-1] > MAX_K:
            continue
        if not _local([v for i, v in enumerate(extras) if i != k], out_shape) \
                or not _local(list(short.epilogue_inputs), out_shape):
            continue
        return k, short
    return None


def fused_params(p: dict, q: dict, k: int) -> dict:
    """The fused launch's params: conv3's (`p`), its weight over both inputs' channels."""
    n, c1, c2 = p["in_shapes"][1][0], p["in_shapes"][0][-1], q["in_shapes"][0][-1]
    return dict(p, in_shapes=[p["in_shapes"][0], [n, 1, 1, c1 + c2]],
                shortcut={"strides": list(q["strides"]), "sums": k})


def rewrite(conv: LaunchOp, short: LaunchOp, k: int, params: dict, store: WeightStore,
            order: dict[str, int], arch: str) -> bool:
    """`conv` (its epilogue's input k is `short`'s result) and `short` as one launch, where
    the conv template emits it for `arch` (its epilogue quantized in the fragments: a model
    whose block output is dequantized by a table, not cast, keeps the pair apart); whether it
    did."""
    n = int(params["in_shapes"][1][0])
    w3, wd = weight_op(conv.inputs[1]), weight_op(short.inputs[1])
    weight_type = tensor_type([n, params["in_shapes"][1][3], 1, 1],
                              element_type_of(conv.inputs[1]), "NHWC")
    probe = WeightOp.create(properties={"ref": StringAttr(w3.ref.data)},
                            result_types=[weight_type])
    fused = _launch(conv, short, k, params, probe.results[0], order)
    if not _emits(fused, arch):
        fused.erase()
        probe.erase()
        return False
    weight = np.concatenate([store[wd.ref.data].reshape(n, -1),
                             store[w3.ref.data].reshape(n, -1)], axis=1)
    w_op = WeightOp.create(
        properties={"ref": StringAttr(store.add(f"{w3.ref.data}.shortcut_sums",
                                                weight.reshape(n, 1, 1, -1)))},
        result_types=[weight_type])
    Rewriter.insert_op([w_op, fused], InsertPoint.before(conv))
    fused.operands[1] = w_op.results[0]
    probe.erase()
    conv.outputs[0].replace_all_uses_with(fused.outputs[0])
    dead = [conv.inputs[1], short.inputs[1]]
    Rewriter.erase_op(conv)
    Rewriter.erase_op(short)
    for value in dead:  # the weights (and their views) no one else reads
        op = value.owner
        if op.parent is not None and not op.results[0].uses:
            under = op.input.owner if isinstance(op, ViewOp) else None
            Rewriter.erase_op(op)
            if isinstance(under, WeightOp) and not under.results[0].uses:
                Rewriter.erase_op(under)
    return True


def _launch(conv: LaunchOp, short: LaunchOp, k: int, params: dict, weight: SSAValue,
            order: dict[str, int]) -> LaunchOp:
    """The fused launch (not yet in a block): operands y, `weight`, conv3's epilogue inputs
    with x for the residual, the downsample's; the downsample's epilogue, then conv3's."""
    main, down = conv.epilogue.block, short.epilogue.block
    types = [main.args[0].type, *(i32 if i == k else a.type for i, a in enumerate(main.args[1:])),
             *(a.type for a in down.args[1:])]
    block = Block(arg_types=types)
    mapper: dict[SSAValue, SSAValue] = {down.args[0]: block.args[1 + k]}
    mapper.update(zip(down.args[1:], block.args[len(main.args):], strict=True))
    quantized = None
    for op in down.ops:  # the downsample's epilogue on its sums
        if isinstance(op, YieldOp):
            quantized = mapper[op.value]
        else:
            block.add_op(op.clone(mapper))
    mapper = {main.args[0]: block.args[0]}
    mapper.update((a, quantized if i == k else block.args[1 + i])
                  for i, a in enumerate(main.args[1:]))
    for op in main.ops:  # then conv3's, the residual its quantized result
        block.add_op(op.clone(mapper))

    names = list(dict.fromkeys([*kernel_origin(short), *kernel_origin(conv)]))
    names.sort(key=lambda name: order.get(name, len(order)))
    extras = [short.inputs[0] if i == k else v for i, v in enumerate(conv.epilogue_inputs)]
    props = dict(conv.properties, params=to_attribute(params))
    if names:
        props["origin"] = ArrayAttr([StringAttr(name) for name in names])
    fused = LaunchOp.create(
        operands=[conv.inputs[0], weight, *extras, *short.epilogue_inputs],
        result_types=[conv.outputs[0].type], properties=props,
        attributes=dict(conv.attributes), regions=[Region(block)])
    set_origin(fused, names)
    return fused


def _emits(fused: LaunchOp, arch: str) -> bool:
    """Whether the conv template has tactics for `fused` on `arch` and emits the first."""
    _, params = kernel_step(fused, {})
    tactics = conv_template.tactics(params, arch)
    if not tactics:
        return False
    try:
        conv_template.emit("probe", {**params, "tactic": tactics[0]})
    except UnsupportedError:
        return False
    return True
