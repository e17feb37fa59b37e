"""fuse-shortcut-convs: a residual block's projection shortcut runs inside the conv it is added
to, as more of that conv's K.

ResNet's first block of each stage adds two 1x1 convs' results: conv3 over the block's last
activation y, and the downsample conv over the block's input x (stride 1 or 2):
`relu(conv(y, W3) + b3 + conv(x, Wd, stride s) + bd)`. That is one GEMM over both inputs'
channels, `[y | x strided] @ [W3 | Wd]^T + (b3 + bd)`: no downsample kernel, no round trip of its
result through memory (ResNet-50 b32 FP16 on an H100: the four downsample convs took 0.11 ms
and their results 77 MB of conv3's reads).

After this pass no `kernel.launch "conv"` (1x1, no padding, one group, NHWC) has an epilogue
whose first op adds the conv's own value to the result of another such 1x1 conv (no epilogue
of its own; this sum its only user; the same FP16/BF16 type and output shape), one of the two
of stride 1, where the template can run the pair as one (`codegen.templates.conv.tactics` has
some: an sm_90 `arch`, whose copy engine reads the second input through a third tensor map;
channels multiples of 64, static sizes). Each such pair becomes one conv with params `shortcut
= {strides}` (the other conv's) and inputs (y, W, b, x), y the stride-1 conv's input (conv3's
in a ResNet, whichever operand of the Add it is): W = [W3 | Wd] along the input channels (a new
weight `<W3>.shortcut`), b = b3 + bd (zeros for a conv without one, summed in FP32, rounded
once); the epilogue loses the add, keeping the rest (the ReLU). The sum of the two convs is
rounded once instead of the downsample's being rounded to FP16 first. REFIT builds keep the
pair apart (their weights refit one by one). Runs after fuse-epilogues, before select-tactics;
it lives in codegen beside select-tactics (DESIGN §1: passes/ does not import codegen), since
whether a pair fuses is whether the conv template has tactics for it.

INT8 (QDQ) blocks take another form (`shortcut_sums`): each conv's result is quantized on its
own before the Add, so the two sums stay apart: one launch over both inputs, `shortcut =
{strides, sums: k}`, the downsample's epilogue and then conv3's in its region (mma.sync tiles,
any target with INT8 tensor cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.codegen import shortcut_sums
from ember.codegen.shortcut_sums import weight_op
from ember.codegen.templates import conv as conv_template
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import LaunchOp, ScalarOp, ViewOp
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.origin import kernel_origin, program_order, set_origin
from ember.dialects.tensor_types import element_type_of, tensor_type
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import PassError

HALVES = ("float16", "bfloat16")


def _plain_1x1(conv: Operation, store: WeightStore) -> dict | None:
    """The params of a 1x1 NHWC FP16/BF16 conv of one group, no padding or dilation, static
    sizes, its weight (and bias) in the store; None otherwise."""
    if not isinstance(conv, LaunchOp) or conv.template.data != "conv":
        return None
    p = attribute_value(conv.params)
    shapes = [*p["in_shapes"], *p["out_shapes"]]
    if p.get("layout") != "NHWC" or p.get("shortcut") is not None or int(p["groups"]) != 1 \
            or list(p["in_shapes"][1][1:3]) != [1, 1] or any(p["pads"]) \
            or list(p["dilations"]) != [1, 1] or len(p["in_shapes"]) not in (2, 3) \
            or {*p["in_dtypes"], *p["out_dtypes"]} - set(HALVES) \
            or len({*p["in_dtypes"], *p["out_dtypes"]}) != 1 \
            or any(not isinstance(d, int) for s in shapes for d in s) \
            or any(weight_op(v) is None or weight_op(v).ref.data not in store
                   for v in conv.inputs[1:len(p["in_shapes"])]):
        return None
    return p


def _added(conv: LaunchOp, own: int) -> tuple[int, ScalarOp] | None:
    """(epilogue input index, the add) where the epilogue's first use of the conv's value is
    `add(value, input)` (either order), that input read nowhere else in it."""
    block = conv.epilogue.block if conv.epilogue is not None else None
    if block is None or block.args[0].uses.get_length() != 1:
        return None
    add = next(iter(block.args[0].uses)).operation
    if not isinstance(add, ScalarOp) or add.fn.data != "add" or len(add.operands) != 2 \
            or add.result.type != block.args[0].type:  # the sum stands in for the value
        return None
    other = [v for v in add.operands if v is not block.args[0]]
    if len(other) != 1 or other[0] not in block.args or other[0].uses.get_length() != 1:
        return None
    j = list(block.args).index(other[0]) - 1
    return (j, add) if conv.inputs[own + j].uses.get_length() == 1 else None


def _without_add(block: Block, j: int, add: ScalarOp) -> Block:
    """`block` without the add and its argument j + 1 (the add's result is argument 0)."""
    kept = [a for i, a in enumerate(block.args) if i != j + 1]
    new = Block(arg_types=[a.type for a in kept])
    mapper: dict[SSAValue, SSAValue] = dict(zip(kept, new.args, strict=True))
    mapper[add.results[0]] = new.args[0]
    for op in block.ops:
        if op is not add:
            new.add_op(op.clone(mapper))
    return new


@dataclass(frozen=True)
class FuseShortcutConvs(ModulePass):
    name = "fuse-shortcut-convs"

    arch: str = ""
    """The build's target: the pair fuses where the conv template has tactics for it there
    (sm_90's copy engine)."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        if not self.arch:
            raise PassError("fuse-shortcut-convs: give arch, the build's target (e.g. "
                            "fuse-shortcut-convs{arch=sm_90})")
        store = weights_of(module)
        if store.refit is not None:  # each conv's weights refit on their own
            return
        order = program_order(module)
        for conv in [op for op in module.walk() if isinstance(op, LaunchOp)]:
            if conv.parent is None:  # (a pair's other conv, fused already)
                continue
            p = _plain_1x1(conv, store)
            if p is None:
                self._sums(conv, store, order)
                continue
            own = len(p["in_shapes"])
            found = _added(conv, own)
            if found is None:
                continue
            j, add = found
            short = conv.inputs[own + j].owner
            q = _plain_1x1(short, store)
            if q is None or short.epilogue is not None \
                    or q["in_dtypes"][0] != p["in_dtypes"][0] or q["out_shapes"] != p["out_shapes"]:
                continue
            # the GEMM's rows are the stride-1 conv's pixels, whichever of the two the add's
            # epilogue went to (Add(conv3, downsample) or Add(downsample, conv3))
            pair = [(conv, p), (short, q)]
            if list(p["strides"]) != [1, 1]:
                pair.reverse()
            (first, pf), (second, ps) = pair
            if list(pf["strides"]) != [1, 1]:
                continue
            params = self._params(pf, ps)
            if not conv_template.tactics(params, self.arch):
                continue
            self._rewrite(conv, short, pair, params, j, add, store, order)

    def _sums(self, conv: LaunchOp, store: WeightStore, order: dict[str, int]) -> None:
        """The INT8 form (`shortcut_sums`), where `conv` takes part in one."""
        found = shortcut_sums.find(conv, store)
        if found is None:
            return
        k, short = found
        params = shortcut_sums.fused_params(attribute_value(conv.params),
                                            attribute_value(short.params), k)
        if conv_template.tactics(params, self.arch):
            shortcut_sums.rewrite(conv, short, k, params, store, order, self.arch)

    @staticmethod
    def _params(p: dict, q: dict) -> dict:
        k, c1, c2 = p["in_shapes"][1][0], p["in_shapes"][0][-1], q["in_shapes"][0][-1]
        dtype = p["in_dtypes"][0]
        return dict(p, in_shapes=[p["in_shapes"][0], [k, 1, 1, c1 + c2], [k], q["in_shapes"][0]],
                    in_dtypes=[dtype] * 4, shortcut={"strides": list(q["strides"])})

    @staticmethod
    def _rewrite(conv: LaunchOp, short: LaunchOp, pair: list[tuple[LaunchOp, dict]],
                 params: dict, j: int, add: ScalarOp, store: WeightStore,
                 order: dict[str, int]) -> None:
        """`conv` (its epilogue adds `short`'s result) and `short` as one conv over `pair`'s
        inputs, the stride-1 conv's first."""
        own = len(attribute_value(conv.params)["in_shapes"])
        (first, pf), (second, ps) = pair
        k = int(pf["in_shapes"][1][0])
        w1, w2 = weight_op(first.inputs[1]), weight_op(second.inputs[1])
        weight = np.concatenate([store[w1.ref.data].reshape(k, -1),
                                 store[w2.ref.data].reshape(k, -1)], axis=1)
        dtype = weight.dtype
        bias = np.zeros(k, np.float32)
        for launch, lp in pair:
            if len(lp["in_shapes"]) == 3:
                bias += store[weight_op(launch.inputs[2]).ref.data].astype(np.float32)
        element = element_type_of(conv.inputs[1])
        w_op = WeightOp.create(
            properties={"ref": StringAttr(store.add(f"{w1.ref.data}.shortcut",
                                                    weight.reshape(k, 1, 1, -1)))},
            result_types=[tensor_type([k, weight.shape[1], 1, 1], element, "NHWC")])
        b_op = WeightOp.create(
            properties={"ref": StringAttr(store.add(f"{w1.ref.data}.shortcut_bias",
                                                    bias.astype(dtype)))},
            result_types=[tensor_type([k], element)])
        Rewriter.insert_op([w_op, b_op], InsertPoint.before(conv))

        names = list(dict.fromkeys([*kernel_origin(conv), *kernel_origin(short)]))
        names.sort(key=lambda n: order.get(n, len(order)))
        extra = [v for i, v in enumerate(conv.inputs[own:]) if i != j]
        props = dict(conv.properties, params=to_attribute(params))
        if names:
            props["origin"] = ArrayAttr([StringAttr(n) for n in names])
        fused = LaunchOp.create(
            operands=[first.inputs[0], w_op.results[0], b_op.results[0], second.inputs[0],
                      *extra],
            result_types=[conv.outputs[0].type], properties=props,
            attributes=dict(conv.attributes),
            regions=[Region(_without_add(conv.epilogue.block, j, add))])
        set_origin(fused, names)
        Rewriter.insert_op(fused, InsertPoint.before(conv))
        conv.outputs[0].replace_all_uses_with(fused.outputs[0])
        dead = [v.owner for launch, lp in pair for v in launch.inputs[1:len(lp["in_shapes"])]]
        Rewriter.erase_op(conv)
        Rewriter.erase_op(short)
        for op in dead:  # the weights and views no one else reads
            if isinstance(op, Operation) and op.parent is not None and not op.results[0].uses:
                under = op.input.owner if isinstance(op, ViewOp) else None
                Rewriter.erase_op(op)
                if isinstance(under, WeightOp) and not under.results[0].uses:
                    Rewriter.erase_op(under)
