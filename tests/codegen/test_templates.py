"""Every kernel template emits CUDA C that NVRTC compiles to CUBIN for sm_90 (no GPU needed),
across a few parameter sets; and building the light_* models for sm_90 compiles every kernel."""

from __future__ import annotations

import re

import pytest

from ember.codegen.emit_cuda import emit_step
from ember.codegen.nvrtc import compile_cuda
from ember.codegen.scalar_c import SCALAR_C, scalar_expr
from ember.codegen.templates import TEMPLATES, emitter
from ember.errors import UnsupportedError

F = "float32"


def _p(ins, outs, dtypes=None, out_dtypes=None, **props):
    return {**props, "in_shapes": ins, "in_dtypes": dtypes or [F] * len(ins),
            "out_shapes": outs, "out_dtypes": out_dtypes or [F] * len(outs)}


def _region(fns, n_in=1, dtype=F):
    ops = []
    for k, fn in enumerate(fns):
        prev = n_in + k - 1
        args = list(range(n_in)) if k == 0 else [prev] + list(range(1, n_in))
        ops.append({"fn": fn, "args": args, "dtype": dtype, "alpha": 0.1, "beta": 0.9})
    return {"ops": ops, "result": n_in + len(fns) - 1}


UNARY_FLOAT = [fn for fn in SCALAR_C if fn not in (
    "add", "sub", "mul", "div", "pow", "max", "min", "mod", "fmod", "prelu", "eq", "lt", "gt",
    "le", "ge", "and", "or", "xor", "bitwise_and", "bitwise_or", "bitwise_xor", "shl", "shr",
    "select", "not", "bitwise_not", "isnan", "isinf", "isposinf", "isneginf")]

def _attention_chain() -> dict:
    """fuse-attention-kernels' launch for 2 heads of 16 over 32 tokens of a packed [1, 32, 96]
    int8 tensor: dequantizes, scores scaled with a mask added, softmax, P V quantized, the
    transpose."""
    heads4, out4 = [1, 2, 32, 16], [1, 2, 32, 32]
    dequant = {"ops": [{"fn": "cast", "args": [0], "dtype": F},
                       {"fn": "mul", "args": [2, 1], "dtype": F},
                       {"fn": "cast", "args": [3], "dtype": "float16"}], "result": 4}

    def heads(offset: int, scale: str) -> dict:
        return {"name": "qkv"[offset // 32], "template": "elementwise", "inputs": ["in0", scale],
                "params": _p([[1, 32, 96], []], [heads4], ["int8", F], ["float16"],
                             region=dequant, in_views=[{"input": 0, "offset": offset,
                                                        "strides": [3072, 16, 96, 1]}])}

    def epilogue(ops: list, shapes: list, result: int, out_dtype: str | None = None) -> dict:
        e = {"ops": ops, "result": result, "in_shapes": shapes, "in_dtypes": [F] * len(shapes)}
        return {**e, "out_dtype": out_dtype} if out_dtype else e

    scaled = epilogue([{"fn": "cast", "args": [0], "dtype": F},
                       {"fn": "mul", "args": [3, 1], "dtype": F},
                       {"fn": "add", "args": [4, 2], "dtype": F},
                       {"fn": "cast", "args": [5], "dtype": "float16"}], [[], [1, 1, 1, 32]], 6)
    quantized = epilogue([{"fn": "cast", "args": [0], "dtype": F},
                          {"fn": "div", "args": [2, 1], "dtype": F},
                          {"fn": "round", "args": [3], "dtype": F},
                          {"fn": "clip", "args": [4], "dtype": F, "alpha": -128.0, "beta": 127.0},
                          {"fn": "cast", "args": [5], "dtype": "int8"}], [[]], 6, "int8")
    half = ["float16", "float16"]
    stages = [heads(0, "in1"), heads(32, "in1"), heads(64, "in1"),
              {"name": "scores", "template": "matmul", "inputs": ["q", "k", "in2", "in3"],
               "params": _p([heads4, heads4], [out4], half, ["float16"], transpose_b=True,
                            epilogue=scaled)},
              {"name": "softmax", "template": "softmax", "inputs": ["scores"],
               "params": _p([out4], [out4], ["float16"], ["float16"], axis=3, log=False)},
              {"name": "pv", "template": "matmul", "inputs": ["softmax", "v", "in4"],
               "params": _p([out4, heads4], [heads4], half, ["float16"], epilogue=quantized)},
              {"name": "out", "template": "transpose", "inputs": ["pv"],
               "params": _p([heads4], [[1, 32, 2, 16]], ["int8"], ["int8"],
                            perm=[0, 2, 1, 3])}]
    return _p([[1, 32, 96], [], [], [1, 1, 1, 32], []], [[1, 32, 2, 16]],
              ["int8", F, F, F, F], ["int8"], stages=stages)


CASES: dict[str, list[dict]] = {
    "elementwise": [
        _p([[2, 3, 4]], [[2, 3, 4]], region=_region(UNARY_FLOAT)),
        _p([[2, 3, 4], [3, 1]], [[2, 3, 4]],
           region=_region(["add", "sub", "mul", "div", "pow", "max", "min", "mod", "fmod",
                           "prelu"], n_in=2)),
        _p([[4, 1], [1, 5]], [[4, 5]], out_dtypes=["bool"],
           region={"ops": [{"fn": "lt", "args": [0, 1], "dtype": "bool"},
                           {"fn": "not", "args": [2], "dtype": "bool"}], "result": 3}),
        _p([[6], [6], [6]], [[6]], dtypes=["bool", F, F],
           region={"ops": [{"fn": "select", "args": [0, 1, 2], "dtype": F}], "result": 3}),
        _p([[5]], [[5]], dtypes=["int64"], out_dtypes=[F],
           region={"ops": [{"fn": "abs", "args": [0], "dtype": "int64"},
                           {"fn": "cast", "args": [1], "dtype": F}], "result": 2}),
        _p([[5], [1]], [[5]], dtypes=["int64", "int64"], out_dtypes=["int64"],
           region=_region(["add", "div", "mod", "max", "bitwise_and", "shl"], n_in=2,
                          dtype="int64")),
        _p([[3]], [[3]], out_dtypes=["bool"],
           region={"ops": [{"fn": "isnan", "args": [0], "dtype": "bool"}], "result": 1}),
    ],
    "matmul": [
        _p([[3, 7], [7, 5]], [[3, 5]]),
        _p([[1, 9216], [4096, 9216]], [[1, 4096]], transpose_b=True),
        _p([[2, 1, 4, 6], [3, 4, 5]], [[2, 3, 6, 5]], transpose_a=True),
        _p([[7], [2, 7, 3]], [[2, 3]]),
    ],
    "conv": [
        _p([[1, 3, 224, 224], [96, 3, 11, 11], [96]], [[1, 96, 54, 54]], strides=[4, 4],
           pads=[0, 0, 0, 0], dilations=[1, 1], groups=1),
        _p([[2, 4, 9, 9], [6, 2, 3, 3]], [[2, 6, 4, 4]], strides=[2, 2], pads=[1, 0, 1, 0],
           dilations=[2, 2], groups=2),
        _p([[1, 2, 10], [3, 2, 3], [3]], [[1, 3, 8]], strides=[1], pads=[0, 0], dilations=[1],
           groups=1),
        _p([[1, 2, 4, 5, 6], [2, 1, 2, 2, 2]], [[1, 2, 3, 4, 5]], strides=[1, 1, 1],
           pads=[0, 0, 0, 0, 0, 0], dilations=[1, 1, 1], groups=2),
        # NC4HW4 (assign-layouts' packed format): implicit GEMM, OIHW weights, C = 6, K = 10
        _p([[2, 2, 9, 9, 4], [10, 6, 3, 3], [10]], [[2, 3, 9, 9, 4]], strides=[1, 1],
           pads=[1, 1, 1, 1], dilations=[1, 1], groups=1, layout="NC4HW4", channels=6),
        # NC4HW4 depthwise, packed C4RS4 weights, vectorized, bias and a fused residual add
        _p([[1, 3, 8, 8, 4], [3, 3, 3, 4], [12]], [[1, 3, 4, 4, 4]], strides=[2, 2],
           pads=[1, 1, 1, 1], dilations=[1, 1], groups=12, layout="NC4HW4", channels=12,
           weight_layout="C4RS4",
           epilogue={"ops": [{"fn": "add", "args": [0, 1], "dtype": F}], "result": 2,
                     "in_shapes": [[1, 3, 4, 4, 4]], "in_dtypes": [F]}),
        # NC4HW4 grouped (2 out channels per group): the scalar direct tactic, OIHW weights
        _p([[1, 2, 6, 6, 4], [12, 3, 3, 3]], [[1, 3, 6, 6, 4]], strides=[1, 1],
           pads=[1, 1, 1, 1], dilations=[1, 1], groups=2, layout="NC4HW4", channels=6),
    ],
    "pool": [
        _p([[1, 3, 9, 9]], [[1, 3, 4, 4]], fn="max", kernel=[3, 3], strides=[2, 2],
           pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=False),
        *(_p([[2, 2, 9, 9, 4]], [[2, 2, 5, 5, 4]], [dt], [dt], fn=fn, kernel=[3, 3],
             strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], ceil_mode=False,
             count_include_pad=fn == "avg", layout="NC4HW4")
          for fn in ("max", "avg", "lp") for dt in (F, "float64")),
        _p([[1, 3, 9, 9]], [[1, 3, 5, 5]], fn="avg", kernel=[3, 3], strides=[2, 2],
           pads=[1, 1, 1, 1], dilations=[1, 1], ceil_mode=False, count_include_pad=True),
        _p([[1, 3, 9]], [[1, 3, 5]], fn="lp", kernel=[2], strides=[2], pads=[0, 1],
           dilations=[1], ceil_mode=True, p=3.0),
        _p([[1, 2, 5, 5]], [[1, 2, 2, 2]], fn="max", kernel=[2, 2], strides=[2, 2],
           pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=False, dtypes=["int64"],
           out_dtypes=["int64"]),
    ],
    "reduce": [
        _p([[1, 1024, 7, 7]], [[1, 1024, 1, 1]], fn=fn, axes=[2, 3], keepdims=True)
        for fn in ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum",
                   "log_sum_exp")
    ] + [  # the innermost dim kept, 2048 outputs: one thread per output (NHWC global pools)
        _p([[2, 7, 7, 1024]], [[2, 1, 1, 1024]], fn=fn, axes=[1, 2], keepdims=True)
        for fn in ("mean", "max", "l2", "log_sum_exp")
    ] + [_p([[3, 4, 5]], [[4]], fn="sum", axes=[0, 2], keepdims=False),
         _p([[3, 4]], [[3]], fn="max", axes=[1], keepdims=False, dtypes=["int64"],
            out_dtypes=["int64"])],
    "softmax": [_p([[1, 1000]], [[1, 1000]], axis=1, log=False),
                _p([[2, 3, 4]], [[2, 3, 4]], axis=1, log=True)],
    "batch_norm": [_p([[1, 64, 7, 7], [64], [64], [64], [64]], [[1, 64, 7, 7]], epsilon=1e-5)],
    "layer_norm": [_p([[2, 3, 8], [8], [8]], [[2, 3, 8]], axis=2, epsilon=1e-5),
                   _p([[2, 3, 8], [3, 1]], [[2, 3, 8]], axis=1, epsilon=1e-5),
                   _p([[2, 3, 8], [8]], [[2, 3, 8]], axis=2, epsilon=1e-6, rms=True),
                   _p([[4, 1000], [1000], [1]], [[4, 1000]], axis=1, epsilon=1e-6, rms=True,
                      dtypes=["float64"] * 3, out_dtypes=["float64"])],
    "group_norm": [_p([[2, 6, 4, 4], [6], [6]], [[2, 6, 4, 4]], groups=3, epsilon=1e-5)],
    "lrn": [_p([[1, 96, 54, 54]], [[1, 96, 54, 54]], size=5, alpha=1e-4, beta=0.75, bias=1.0)],
    "transpose": [_p([[1, 4, 28, 5, 5]], [[1, 28, 4, 5, 5]], perm=[0, 2, 1, 3, 4]),
                  _p([[2, 3]], [[3, 2]], perm=[1, 0], dtypes=["int64"], out_dtypes=["int64"]),
                  _p([[2, 40, 9, 7]], [[2, 9, 7, 40]], perm=[0, 2, 3, 1]),
                  _p([[2, 9, 7, 40]], [[2, 40, 9, 7]], perm=[0, 3, 1, 2])],
    "concat": [_p([[1, 64, 5, 5], [1, 32, 5, 5]], [[1, 96, 5, 5]], axis=1),
               _p([[2, 3], [2, 0], [2, 1]], [[2, 4]], axis=-1)],
    "slice": [_p([[5, 6]], [[2, 3]], starts=[1, 5], ends=[5, -7], steps=[2, -2])],
    "gather": [_p([[5, 4], [2, 3]], [[5, 2, 3]], dtypes=[F, "int64"], axis=1),
               _p([[5], [2]], [[2]], dtypes=["int64", "int32"], out_dtypes=["int64"], axis=0)],
    "pad": [_p([[3, 4]], [[5, 9]], pads=[1, 2, 1, 3], mode=m, value=1.5)
            for m in ("constant", "reflect", "edge", "wrap")]
    + [_p([[3, 4]], [[2, 6]], pads=[-1, 1, 0, 1], mode="constant")],
    "expand": [_p([[3, 1]], [[2, 3, 4]]), _p([[1]], [[5]], dtypes=["bool"],
                                              out_dtypes=["bool"])],
    "tile": [_p([[2, 3]], [[4, 9]], repeats=[2, 3])],
    "arg_reduce": [_p([[3, 4, 5]], [[3, 1, 5]], out_dtypes=["int64"], fn="max", axis=1,
                      keepdims=1, select_last_index=0),
                   _p([[3, 4]], [[3]], dtypes=["int64"], out_dtypes=["int64"], fn="min",
                      axis=-1, keepdims=0, select_last_index=1)],
    "conv_transpose": [
        _p([[1, 4, 5, 5], [4, 3, 3, 3], [6]], [[1, 6, 10, 10]], strides=[2, 2],
           pads=[1, 1, 1, 1], dilations=[1, 1], groups=2, output_padding=[1, 1]),
        _p([[2, 2, 7], [2, 3, 2]], [[2, 3, 7]], strides=[1], pads=[1, 1],
           dilations=[2], groups=1),
        _p([[1, 2, 3, 3, 3], [2, 1, 2, 2, 2]], [[1, 2, 4, 4, 4]], strides=[1, 1, 1],
           pads=[0] * 6, dilations=[1, 1, 1], groups=2),
    ],
    "resize": [
        _p([[1, 2, 4, 4]], [[1, 2, 8, 8]], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0],
           coordinate_transformation_mode=ctm, nearest_mode=nm)
        for ctm, nm in (("half_pixel", "round_prefer_floor"), ("asymmetric", "floor"),
                        ("align_corners", "round_prefer_ceil"), ("pytorch_half_pixel", "ceil"))
    ] + [
        _p([[1, 1, 5, 6]], [[1, 1, 3, 9]], mode="linear", scales=[1.0, 1.0, 0.6, 1.5],
           coordinate_transformation_mode="half_pixel_symmetric", antialias=1),
        _p([[1, 1, 4, 4]], [[1, 1, 7, 7]], mode="cubic", scales=[1.0, 1.0, 1.75, 1.75],
           sizes=[1, 1, 7, 7], cubic_coeff_a=-0.5, exclude_outside=1),
        _p([[1, 1, 4, 4]], [[1, 1, 3, 3]], mode="linear", scales=[1.0, 1.0, 0.75, 0.75],
           coordinate_transformation_mode="tf_crop_and_resize",
           roi=[0.0, 0.0, -0.2, 0.1, 1.0, 1.0, 1.3, 0.9], extrapolation_value=-1.0),
        _p([[2, 5]], [[2, 10]], dtypes=["uint8"], out_dtypes=["uint8"], mode="linear",
           scales=[1.0, 2.0]),
    ],
    "cumsum": [_p([[4, 5]], [[4, 5]], axis=1, exclusive=0, reverse=0),
               _p([[3, 4, 2]], [[3, 4, 2]], dtypes=["int64"], out_dtypes=["int64"], axis=-2,
                  exclusive=1, reverse=1)],
    "trilu": [_p([[2, 4, 5]], [[2, 4, 5]], upper=1, k=1),
              _p([[5, 3]], [[5, 3]], dtypes=["bool"], out_dtypes=["bool"], upper=0, k=-1)],
    "gather_elements": [_p([[3, 4], [3, 2]], [[3, 2]], dtypes=[F, "int64"], axis=1),
                        _p([[3, 4, 2], [2, 4, 2]], [[2, 4, 2]], dtypes=["int64", "int32"],
                           out_dtypes=["int64"], axis=0)],
    "einsum": [_p([[2, 3, 4], [2, 4, 5]], [[2, 3, 5]], equation="bij,bjk->bik"),
               _p([[4, 4]], [[4]], equation="ii->i"),
               _p([[3, 4], [4]], [[3]], equation="ij,j"),
               _p([[2, 1, 3], [5, 3]], [[2, 1, 5]], equation="...j,kj->...k")],
    "quantize": [_p([[2, 3, 4], [], []], [[2, 3, 4]], dtypes=[F, F, "uint8"],
                    out_dtypes=["uint8"], axis=1),
                 _p([[2, 3, 4], [3], [3]], [[2, 3, 4]], dtypes=[F, F, "int8"],
                    out_dtypes=["int8"], axis=1),
                 _p([[2, 6], [2, 3]], [[2, 6]], out_dtypes=["uint8"], axis=1, block_size=2)],
    "dequantize": [_p([[2, 3, 4], [3], [3]], [[2, 3, 4]], dtypes=["int8", F, "int8"], axis=1),
                   _p([[5], []], [[5]], dtypes=["uint8", F], axis=1),
                   _p([[4], [], []], [[4]], dtypes=["int32", F, "int32"], axis=1)],
    "range": [_p([[], [], []], [[7]], dtypes=["int64"] * 3, out_dtypes=["int64"]),
              _p([[], [], []], [[5]])],
    "fill": [_p([[2]], [[3, 4]], dtypes=["int64"], value=1.5),
             _p([[1]], [[6]], dtypes=["int64"], out_dtypes=["int64"], value=-3)],
    "attention": [
        _p([[2, 16, 192]] * 3 + [[2, 1, 16, 16]], [[2, 16, 64]], num_heads=4, head_dim=16,
           scale=0.25, k_offset=64, v_offset=128),
        _p([[1, 40, 256], [1, 70, 256], [1, 70, 256], [1, 1, 1, 70]], [[1, 40, 256]],
           dtypes=[F, F, F, "bool"], num_heads=2, head_dim=128, scale=0.088, masked_value=-1e4),
        _p([[3, 5, 24], [3, 9, 24], [3, 9, 24]], [[3, 5, 24]], dtypes=["float64"] * 3,
           out_dtypes=["float64"], num_heads=3, head_dim=8, scale=0.35),
    ],
    "attention_chain": [_attention_chain()],
    "reformat": [
        _p([[2, 6, 5, 7]], [[2, 2, 5, 7, 4]], reformat="NCHW->NC4HW4", channels=6),
        _p([[2, 2, 5, 7, 4]], [[2, 6, 5, 7]], reformat="NC4HW4->NCHW", channels=6),
        _p([[2, 5, 7, 8]], [[2, 2, 5, 7, 4]], reformat="NHWC->NC4HW4", channels=8),
        _p([[2, 3, 5, 7, 4]], [[2, 5, 7, 9]], ["int64"], ["int64"], reformat="NC4HW4->NHWC",
           channels=9),
    ],
    "shape_of": [_p([[2, 3, 4]], [[3]], out_dtypes=["int64"]),
                 _p([[2, 3, 4]], [[2]], out_dtypes=["int64"], start=1)],
    "bitcast": [_p([[2, 3]], [[2, 3]], out_dtypes=["int32"], to="int32"),
                _p([[5]], [[5]], dtypes=["bool"], out_dtypes=["uint8"], to="uint8"),
                _p([[4]], [[4]], dtypes=["float16"], out_dtypes=["int16"], to="int16")],
    "rnn": [_p([[5, 2, 3], [1, 4, 3], [1, 4, 4]], [[5, 1, 2, 4], [1, 2, 4]], cell="rnn",
               hidden_size=4, direction="forward"),
            _p([[5, 2, 3], [2, 12, 3], [2, 12, 4], [2, 24], [2]],
               [[5, 2, 2, 4], [2, 2, 4]], [F, F, F, F, "int32"], cell="gru", hidden_size=4,
               direction="bidirectional", optional=["bias", "sequence_lens"],
               linear_before_reset=1, clip=0.5)],
    "lstm": [_p([[2, 5, 3], [1, 16, 3], [1, 16, 4], [2, 1, 4], [2, 1, 4], [1, 12]],
                [[2, 5, 1, 4], [2, 1, 4], [2, 1, 4]], cell="lstm", hidden_size=4,
                direction="reverse", layout=1,
                optional=["initial_h", "initial_c", "peepholes"],
                activations=["Sigmoid", "Elu", "Tanh"], activation_alpha=[0.5])],
    "grid_sample": [
        _p([[2, 3, 5, 4], [2, 3, 4, 2]], [[2, 3, 3, 4]], mode="linear", padding_mode="zeros",
           align_corners=False),
        _p([[1, 2, 4, 3, 5], [1, 2, 2, 2, 3]], [[1, 2, 2, 2, 2]], mode="cubic",
           padding_mode="reflection", align_corners=True),
        _p([[1, 2, 4, 4], [1, 3, 3, 2]], [[1, 2, 3, 3]], ["float16", "float16"], ["float16"],
           mode="nearest", padding_mode="border", align_corners=False)],
    "max_pool_indices": [
        _p([[2, 3, 7, 6]], [[2, 3, 3, 3]] * 2, [F], [F, "int64"], kernel=[3, 2],
           strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=False,
           storage_order=0),
        _p([["N", 3, 9]], [["N", 3, 4]] * 2, ["float16"], ["float16", "int64"], kernel=[3],
           strides=[2], pads=[1, 0], dilations=[1], ceil_mode=True, storage_order=1)],
    "max_unpool": [
        _p([[2, 3, 3, 3], [2, 3, 3, 3]], [[2, 3, 7, 7]], [F, "int64"], kernel=[3, 3],
           strides=[2, 2], pads=[0, 0, 0, 0], windowed=True),
        _p([[1, 2, 4], [1, 2, 4]], [[1, 2, 9]], ["float16", "int64"], ["float16"], kernel=[2],
           strides=[2], pads=[0, 0], output_shape=[1, 2, 9], windowed=True)],
    "tensor_scatter": [
        _p([[2, 4, 8, 16], [2, 4, 1, 16], [2]], [[2, 4, 8, 16]], [F, F, "int64"],
           axis=2, mode="linear"),
        _p([["B", 4, 8, 16], ["B", 4, 3, 16]], [["B", 4, 8, 16]], ["float16"] * 2,
           ["float16"], axis=-2, mode="circular")],
    "col2im": [
        _p([[2, 12, 12]], [[2, 3, 5, 6]], image_shape=[5, 6], block_shape=[2, 2],
           strides=[1, 2], pads=[0, 0, 0, 1], dilations=[1, 1]),
        _p([[1, 8, 24]], [[1, 1, 4, 3, 4]], ["float16"], ["float16"], image_shape=[4, 3, 4],
           block_shape=[2, 2, 2], strides=[1, 1, 1], pads=[0] * 6, dilations=[1, 1, 1])],
    "topk": [
        _p([[4, 1000]], [[4, 5]] * 2, [F], [F, "int64"], k=5, axis=1, largest=True),
        _p([["N", 30, 3]], [["N", 4, 3]] * 2, ["float16"], ["float16", "int64"], k=4, axis=1,
           largest=False),
        _p([[6, 7]], [[6, 2]] * 2, ["int64"], ["int64", "int64"], k=2, axis=1, largest=True)],
    "roi_align": [
        _p([[2, 3, 12, 10], [5, 4], [5]], [[5, 3, 3, 4]], [F, F, "int64"], mode="avg",
           coordinate_transformation_mode="half_pixel", output_height=3, output_width=4,
           sampling_ratio=2, spatial_scale=0.5),
        _p([[1, 2, 8, 8], [3, 4], [3]], [[3, 2, 2, 2]], ["float16", "float16", "int64"],
           ["float16"], mode="max", coordinate_transformation_mode="output_half_pixel",
           output_height=2, output_width=2, sampling_ratio=0, spatial_scale=1.0)],
    "deform_conv": [
        _p([[2, 4, 7, 6], [6, 2, 3, 2], [2, 24, 7, 5], [6], [2, 12, 7, 5]], [[2, 6, 7, 5]],
           present=["bias", "mask"], strides=[1, 1], pads=[1, 0, 1, 0], dilations=[1, 1],
           group=2, offset_group=2),
        _p([[1, 2, 5, 5], [3, 2, 3, 3], [1, 18, 3, 3]], [[1, 3, 3, 3]],
           ["float16"] * 3, ["float16"], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1],
           group=1, offset_group=1)],
    "gather_nd": [
        _p([[4, 5, 6], [3, 2]], [[3, 6]], [F, "int64"], batch_dims=0),
        _p([["N", 5, 6], ["N", 4, 1]], [["N", 4, 6]], ["float16", "int32"], ["float16"],
           batch_dims=1)],
}


SYMBOLS = {"N": (1, 4, 16), "B": (1, 2, 8)}


def test_every_template_has_cases():
    # a plugin's kernel is the plugin's own (tests/compiler/test_plugins.py compiles one)
    assert set(CASES) == set(TEMPLATES) - {"plugin"}


@pytest.mark.parametrize("template,index", [(t, i) for t, cs in CASES.items()
                                            for i in range(len(cs))])
def test_template_compiles(template, index):
    params = CASES[template][index]
    step = {"name": f"{template}_{index}", "template": template, "params": params}
    name, spec = emit_step(step, SYMBOLS)  # (a few cases have symbolic dims)
    assert re.search(rf'extern "C" __global__ void (__launch_bounds__\(\d+, \d+\) )?{name}\(',
                     spec.source)
    assert spec.source.startswith("// ")  # the tactic comment
    assert all(v >= 1 for v in (*spec.grid, *spec.block) if isinstance(v, int))
    kernel = compile_cuda(spec.source, name=name, arch="sm_90")
    assert kernel.cubin.startswith(b"\x7fELF") and kernel.ptx


def test_unknown_template_and_function_are_named():
    with pytest.raises(UnsupportedError, match="nonzero"):
        emitter("nonzero")
    with pytest.raises(UnsupportedError, match="'frobnicate'"):
        scalar_expr("frobnicate", ["x"], [F], F)
    with pytest.raises(UnsupportedError, match="step 'nonzero_3'.*nonzero"):
        emit_step({"name": "nonzero_3", "template": "nonzero", "params": {}})


def test_scalar_table_spellings():
    assert scalar_expr("relu", ["x"], [F], F) == "fmaxf(x, 0.0f)"
    assert scalar_expr("relu", ["x"], ["float64"], "float64") == "fmax(x, 0.0)"
    assert "erff" in scalar_expr("erf", ["x"], [F], F)
    assert scalar_expr("lt", ["a", "b"], [F, F], "bool") == "(a < b)"
    assert scalar_expr("cast", ["x"], [F], "int64") == "(long long)(x)"
    assert "0.5f" in scalar_expr("clip", ["x"], [F], F, alpha=-0.5, beta=0.5)


def test_light_models_compile_for_sm_90():
    """DESIGN §9: every kernel the builds emit compiles (CUBIN for sm_90) with no GPU."""
    from ember.compiler.builder import BuilderConfig, build_model
    from ember.compiler.models import LIGHT_MODELS, light_model_path

    for name in LIGHT_MODELS:
        manifest, sections = build_model(str(light_model_path(name)),
                                         BuilderConfig(target_arch="sm_90"))
        names = {k["name"] for k in manifest["kernels"]}
        assert manifest["target"]["arch"] == "sm_90"
        for step in manifest["steps"]:
            assert step["cuda"]["kernel"] in names, (name, step["name"])
        for k in manifest["kernels"]:
            assert k["cubin_offset"] % 256 == 0
            blob = sections["cubin"][k["cubin_offset"]:k["cubin_offset"] + k["cubin_size"]]
            assert blob.startswith(b"\x7fELF"), (name, k["name"])


def test_steps_without_a_cuda_template_fall_back_to_the_host():
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    from ember.compiler.builder import BuilderConfig, build_model
    from ember.errors import UnsupportedError

    # dequantize has no float16 kernel: the DequantizeLinear to float16 runs on the host
    graph = h.make_graph([h.make_node("Relu", ["x"], ["r"], name="relu"),
                          h.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dequant")],
                         "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 5]),
                               h.make_tensor_value_info("q", T.INT8, [2, 5])],
                         [h.make_tensor_value_info("r", T.FLOAT, [2, 5]),
                          h.make_tensor_value_info("y", T.FLOAT16, [2, 5])],
                         [h.make_tensor("s", T.FLOAT16, [], [0.5])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21)])
    onnx.checker.check_model(model)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90"))
    relu, dequant = manifest["steps"]
    assert "device" not in relu and relu["cuda"]["kernel"].startswith("elementwise_")
    assert dequant["device"] == "cpu" and "dequantize" in dequant["fallback"]
    assert "dequant" in dequant["fallback"] and "float16" in dequant["fallback"]
    with pytest.raises(UnsupportedError, match="float16"):
        build_model(model, BuilderConfig(target_arch="sm_90", allow_cpu_fallback=False))


def test_reduce_keeping_the_innermost_dim_runs_one_thread_per_output():
    """A global pool in NHWC (H, W reduced, C innermost) takes a thread per output, so a warp
    reads 32 neighbouring channels; reducing the innermost dim keeps a block per output."""
    nhwc = emitter("reduce")("k", _p([[2, 7, 7, 1024]], [[2, 1, 1, 1024]], fn="mean",
                                     axes=[1, 2], keepdims=True))
    assert "one thread per output element (2048 outputs x 49 reduced" in nhwc.source
    assert nhwc.grid == (8, 1, 1) and nhwc.block == (256, 1, 1)
    nchw = emitter("reduce")("k", _p([[2, 1024, 7, 7]], [[2, 1024, 1, 1]], fn="mean",
                                     axes=[2, 3], keepdims=True))
    assert "one block of 64 threads per output element" in nchw.source


def test_transpose_of_two_swapped_groups_goes_through_shared_memory_tiles():
    from ember.codegen.templates.transpose import swapped_groups

    assert swapped_groups([0, 2, 3, 1]) == (1, 2) and swapped_groups([0, 3, 1, 2]) == (1, 3)
    assert swapped_groups([1, 0]) == (0, 1) and swapped_groups([0, 2, 1, 3]) is None
    nhwc = emitter("transpose")("k", _p([[32, 64, 56, 56]], [[32, 56, 56, 64]],
                                        perm=[0, 2, 3, 1]))
    assert "[32, 64, 3136] -> [32, 3136, 64] through 32x32 shared-memory tiles" in nhwc.source
    assert nhwc.grid == (98, 2, 32)
    few = emitter("transpose")("k", _p([[32, 8, 224, 224]], [[32, 224, 224, 8]],
                                       perm=[0, 2, 3, 1]))
    assert "one thread per output element" in few.source
    other = emitter("transpose")("k", _p([[2, 3, 4, 5]], [[2, 4, 3, 5]], perm=[0, 2, 1, 3]))
    assert "one thread per output element" in other.source
