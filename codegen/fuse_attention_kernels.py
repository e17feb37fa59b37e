"""fuse-attention-kernels: an attention chain that fuse-attention could not make one
`nn.attention` (Q/DQ nodes inside it: a model from onnxruntime's quantize_static) runs as one
kernel, `kernel.launch "attention_chain"`.

At the kernel level such a chain is seven kernels a layer (BERT INT8: the Q, K and V
dequantizes, each a `kernel.elementwise` reading its heads through a view of the packed
projection output; the scores' matmul with its fake-quantizes, scale and mask as an epilogue;
the softmax with P's fake-quantize; P V with the output quantize; the transpose back to
[B, S, H, D]). Matched, anchored on the transpose:

    q, k, v  = kernel.elementwise(x viewed [B, H, S, D], one-value inputs...)    (half results)
    s = kernel.launch "matmul"(q, k, ...) {transpose_b}   epilogue: anything, half result
    p = kernel.launch "softmax"(s, ...) {axis 3}          epilogue: anything, half result
    o = kernel.launch "matmul"(p, v, ...)                 epilogue: anything
    y = kernel.launch "transpose"(o) {perm [0, 2, 1, 3]}

where each value inside has no other user, x is a [B, S, W] int8 / uint8 tensor read at
columns offset + h·D.. (offset and W multiples of 16, so 16-byte loads), D a multiple of 16 up
to 128 and Sk a multiple of 16 up to 128 (a warp holds whole score rows in registers: the
softmax's result is needed whole before P's quantize), static shapes (the chain's other
inputs too), one half type for Q, K, V, the scores and P, P V storing that type, int8, uint8
or float32, row-major values, and no op given a tactic yet (none would survive). The fused
launch's params hold the replaced kernels as `stages` ({name, template, inputs, params}: what
`kernel_step` gives for each), its operands are the chain's outside inputs (deduplicated), and
its CPU kernel runs the stages in order, so the CPU results do not change; the CUDA kernel
(`codegen.templates.attention_chain`) computes each stage's regions in registers. Runs after
fuse-strided-reads (the views) and tabulate-int8-chains (the regions' final form), GPU builds for
sm_80 and newer (mma.sync FP16); it lives in codegen because the stages' params are
`kernel_step`'s (DESIGN §1: passes/ does not import codegen).
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.codegen.kernel_step import kernel_step
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.dialects.origin import kernel_origin, program_order, set_origin
from ember.dialects.tensor_types import element_type_of, format_of, shape_of

HALVES = ("float16", "bfloat16")
SOURCES = ("int8", "uint8")  # the 8-bit integers the kernel loads and converts
STORED = ("int8", "uint8", "float32")  # what it stores besides Q/K/V's half type
PLAIN = ("", "NCHW")  # row-major [B, H, S, D] / [B, S, H, D] (assign-layouts' NCHW for 4-D)
MAX_KEYS = 128  # a warp's 16 rows of scores stay in registers: 64 floats a thread at 128
MAX_HEAD_DIM = 128
LOAD_BYTES = 16


def _dtype(value: SSAValue) -> str:
    return numpy_dtype(element_type_of(value)).name


def _only_use(value: SSAValue) -> bool:
    return value.uses.get_length() == 1


def _static(value: SSAValue) -> list[int] | None:
    shape = shape_of(value)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return list(shape)


def _launch(value: SSAValue, template: str) -> LaunchOp | None:
    """The launch of `template` giving `value` (its only use), row-major, not yet given a
    tactic (a tactic would be lost in the fused kernel)."""
    op = value.owner
    if isinstance(op, LaunchOp) and op.template.data == template and _only_use(value) \
            and op.tactic is None and op.small_tactics is None and format_of(value) in PLAIN:
        return op
    return None


def _own(op: LaunchOp) -> int:
    """The operands before the epilogue's extra inputs."""
    return len(op.inputs) - len(op.epilogue_inputs)


def _heads(value: SSAValue) -> ElementwiseOp | None:
    """The elementwise op giving a [B, H, S, D] half operand from the heads of a [B, S, W]
    8-bit tensor (one input read through a view of strides [S·W, D, W, 1], the others one
    value each), 16-byte aligned rows; None otherwise."""
    op = value.owner
    out = _static(value)
    if not isinstance(op, ElementwiseOp) or not _only_use(value) or op.views is None \
            or len(op.views.data) != 1 or out is None or len(out) != 4 \
            or _dtype(value) not in HALVES or format_of(value) not in PLAIN \
            or op.tactic is not None:
        return None
    view = attribute_value(op.views.data[0])
    k = view["input"]
    src = _static(op.inputs[k])
    if src is None or len(src) != 3 or _dtype(op.inputs[k]) not in SOURCES \
            or format_of(op.inputs[k]) not in PLAIN:
        return None
    b, h, s, d = out
    w = src[2]
    if src[:2] != [b, s] or list(view["strides"]) != [s * w, d, w, 1] \
            or view["offset"] % LOAD_BYTES or w % LOAD_BYTES or d % 16 or d > MAX_HEAD_DIM \
            or view["offset"] + h * d > w:
        return None
    if any(i != k and (_static(x) is None or any(n != 1 for n in _static(x)))
           for i, x in enumerate(op.inputs)):
        return None
    return op


def _match(tr: LaunchOp) -> dict | None:
    """The chain ending in transpose `tr`: {name: kernel op}, or None."""
    if tr.template.data != "transpose" or attribute_value(tr.params).get("perm") != [0, 2, 1, 3] \
            or tr.tactic is not None or format_of(tr.outputs[0]) not in PLAIN:
        return None
    pv = _launch(tr.inputs[0], "matmul")
    if pv is None or _own(pv) != 2:
        return None
    pp = attribute_value(pv.params)
    if pp.get("transpose_a") or pp.get("transpose_b") or pp["out_dtypes"][0] not in HALVES:
        return None
    sm = _launch(pv.inputs[0], "softmax")
    v = _heads(pv.inputs[1])
    if sm is None or v is None or _own(sm) != 1:
        return None
    smp = attribute_value(sm.params)
    if smp.get("log") or smp.get("axis") not in (3, -1) or _dtype(sm.outputs[0]) not in HALVES:
        return None
    sc = _launch(sm.inputs[0], "matmul")
    if sc is None or _own(sc) != 2:
        return None
    scp = attribute_value(sc.params)
    if scp.get("transpose_a") or not scp.get("transpose_b") \
            or _dtype(sc.outputs[0]) not in HALVES or scp["out_dtypes"][0] not in HALVES:
        return None
    q, k = _heads(sc.inputs[0]), _heads(sc.inputs[1])
    if q is None or k is None:
        return None
    # one half type for Q, K, V, the scores and P (own and stored), P V's own; P V stores it,
    # 8-bit integers or float32
    types = {_dtype(x.output) for x in (q, k, v)} | {scp["out_dtypes"][0], pp["out_dtypes"][0],
                                                     _dtype(sc.outputs[0]), smp["out_dtypes"][0],
                                                     _dtype(sm.outputs[0])}
    shapes = [_static(x) for x in (q.output, k.output, v.output, sc.outputs[0])]
    if len(types) != 1 or None in shapes or _dtype(tr.outputs[0]) not in (*types, *STORED):
        return None
    (b, h, sq, d), (kb, kh, sk, kd), vshape, _ = shapes
    if [kb, kh, kd] != [b, h, d] or vshape != [b, h, sk, d] or sk % 16 or sk > MAX_KEYS:
        return None
    return {"q": q, "k": k, "v": v, "scores": sc, "softmax": sm, "pv": pv, "out": tr}


class FuseAttentionKernels(ModulePass):
    name = "fuse-attention-kernels"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        order = program_order(module)
        for tr in [op for op in module.walk() if isinstance(op, LaunchOp)]:
            chain = _match(tr)
            if chain is not None:
                _fuse(chain, order)


def _fuse(chain: dict, order: dict[str, int]) -> None:
    operands: list[SSAValue] = []

    def name(value: SSAValue) -> str:
        for stage, op in chain.items():
            if value is op.results[0]:
                return stage
        if value not in operands:
            operands.append(value)
        return f"in{operands.index(value)}"

    for op in chain.values():  # the chain's outside inputs, in first-use order
        for x in op.operands:
            name(x)
    if any(_static(x) is None for x in operands):
        return
    stages = []
    for stage, op in chain.items():
        template, params = kernel_step(op, {})
        stages.append({"name": stage, "template": template,
                       "inputs": [name(x) for x in op.operands], "params": params})
    out = chain["out"]
    params = {"stages": stages,
              "in_shapes": [_static(x) for x in operands],
              "in_dtypes": [_dtype(x) for x in operands],
              "out_shapes": [_static(out.outputs[0])], "out_dtypes": [_dtype(out.outputs[0])]}
    names = sorted({n for op in chain.values() for n in kernel_origin(op)},
                   key=lambda n: order.get(n, len(order)))
    props = {"template": StringAttr("attention_chain"), "params": to_attribute(params)}
    if names:
        props["origin"] = ArrayAttr([StringAttr(n) for n in names])
    fused = LaunchOp.create(operands=operands, result_types=[out.outputs[0].type],
                            properties=props, attributes=dict(out.attributes))
    set_origin(fused, names)
    Rewriter.insert_op(fused, InsertPoint.before(out))
    out.outputs[0].replace_all_uses_with(fused.outputs[0])
    for op in reversed(list(chain.values())):
        Rewriter.erase_op(op)
