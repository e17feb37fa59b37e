"""fuse-shortcut-convs' INT8 form (`shortcut = {strides, sums: k}`, `codegen.shortcut_sums`)
as one mma.sync GEMM over byte pairs: A's first K2 columns are the downsample's input x read
every `strides`-th pixel (the epilogue's extra input k), the rest conv3's input y; B is the
weight [Wd | W3]. At the end of the first K2 the main loop applies the downsample's own
quantize to those sums (`epilogue_split.split_second`) and keeps the bytes, four to a register
(`gemm_mma.mainloop`'s `second`, `second_head`; or, with `PACK` off, the int32 sums); the
staged store's head applies the rest of the epilogue in registers, conv3's requantized sum
with that byte where it read the residual, and the drain copies bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.codegen.templates import epilogue_split, gemm_mma
from ember.codegen.templates.gemm_tiles import Operand, dense
from ember.errors import UnsupportedError


@dataclass(frozen=True)
class SumsGemm:
    """The GEMM of a shortcut-sums conv, in byte pairs: M output pixels, N output channels, K
    both inputs' channels (`second` of them the downsample's, first), operands `a`, `b`."""

    m: int
    n: int
    k: int
    second: int
    a: Operand
    b: Operand
    input: int  # the epilogue input that is x (its kernel argument in<2 + input>)


def is_sums(params: dict) -> bool:
    return epilogue_split.second_sums(params) is not None


def gemm(params: dict) -> SumsGemm:
    """The step's `SumsGemm`; UnsupportedError where its sizes do not take the form: NHWC
    int8, 1x1 weights over both inputs' channels, y's channels a multiple of 16 and x's of 64
    (its sums end on a k-tile), no padding, the strided x covering y's pixels."""
    k = epilogue_split.second_sums(params)
    epilogue = params.get("epilogue") or {}
    in_shapes = epilogue.get("in_shapes") or []
    if k is None or not 0 <= k < len(in_shapes):
        raise UnsupportedError(f"CUDA conv: shortcut sums of epilogue input {k}, which the "
                               f"step's {len(in_shapes)}-input epilogue lacks")
    y, w, x = (list(s) for s in (params["in_shapes"][0], params["in_shapes"][1], in_shapes[k]))
    sh, sw = (int(v) for v in params["shortcut"]["strides"])
    shapes = [*y, *w, *x]
    if params.get("layout") != "NHWC" or any(not isinstance(d, int) for d in shapes) \
            or len(y) != 4 or len(x) != 4 or w[1:3] != [1, 1] or y[-1] % 16 or x[-1] % 64 \
            or w[3] != y[-1] + x[-1] or list(params["strides"]) != [1, 1] or any(params["pads"]) \
            or int(params["groups"]) != 1 or x[0] != y[0] \
            or (y[1] - 1) * sh >= x[1] or (y[2] - 1) * sw >= x[2] \
            or epilogue["in_dtypes"][k] != "int8" or list(params["in_dtypes"]) != ["int8"] * 2:
        raise UnsupportedError(
            f"CUDA conv: shortcut sums take int8 NHWC 1x1 convs, channels multiples of 16 "
            f"(y) and 64 (x), x covering y's pixels at strides {[sh, sw]} (y {y}, weight {w}, "
            f"x {x}, layout {params.get('layout')})")
    n_img, h, wd = y[:3]
    c1, c2 = y[3] // 2, x[3] // 2  # byte pairs
    pixels, total = n_img * h * wd, c1 + c2

    def setup(slot: str, mn: str) -> list[str]:
        p = f"p{slot}"
        return [f"const bool ok{slot} = ({mn}) < {pixels};",
                f"const int {p} = ok{slot} ? ({mn}) : 0;",
                f"const size_t at{slot} = (size_t){p} * {c1};",
                f"const size_t at{slot}x = ((size_t)({p} / {h * wd} * {x[1]} + {p} / {wd} % {h}"
                f" * {sh}) * {x[2]} + {p} % {wd} * {sw}) * {c2};"]

    def load(slot: str, kv: str) -> tuple[list[str], str, str]:
        return ([f"const unsigned short* src_ = {kv} < {c2} ? s16 : x16;"],
                f"ok{slot} && {kv} < {total}",
                f"({kv} < {c2} ? at{slot}x + (size_t){kv} : at{slot} + (size_t)({kv} - {c2}))")

    a = Operand("src_", True, setup, load, vec4=True, vec8=True)
    b = dense("w16", w[0], total, total, 1, "0", vec4=True, vec8=True)
    return SumsGemm(pixels, w[0], total, c2, a, b, k)


def tactics(params: dict, sms: int) -> list[dict]:
    """The mma.sync tiles (the loop that keeps a second GEMM's sums) whose BK divides the
    downsample's K, as the cost model ranks them; none where the step's y and weight do not
    take the form (its params with or without the epilogue: fuse-shortcut-convs asks before
    the launch has one)."""
    y, w = (list(s) for s in params["in_shapes"][:2])
    if params.get("layout") != "NHWC" or any(not isinstance(d, int) for d in [*y, *w]) \
            or len(y) != 4 or len(w) != 4 or y[-1] % 16 or (w[3] - y[3]) % 64 \
            or w[3] <= y[3] or list(params["in_dtypes"]) != ["int8"] * 2:
        return []
    if params.get("epilogue") is not None:
        try:
            gemm(params)
        except UnsupportedError:
            return []
    m, n, k, second = y[0] * y[1] * y[2], w[0], w[3] // 2, (w[3] - y[3]) // 2
    found = gemm_mma.candidates(m, n, k, 1, top=len(gemm_mma.MMA_TILES), split_k=False,
                                sms=sms)
    return [t for t in found if "mma" in t and second % int(t["mma"][2]) == 0
            and _accumulators(t["mma"]) <= MAX_ACCUMULATORS][:TOP]


# a thread keeps the loop's sums and the shortcut's (as bytes, or as int32 sums with `PACK` off:
# layer1's 128x64, 64 sums a thread, then takes 230 registers without spills; a 128x128's
# 2 x 128 would spill): tiles of at most 64 sums a thread, the best 4
MAX_ACCUMULATORS = 64
TOP = 4


def _accumulators(tile: list) -> int:
    """The int32 sums each thread of an mma.sync tile [bm, bn, bk, wm, wn, stages] holds."""
    bm, bn, _, wm, wn = (int(v) for v in tile[:5])
    return bm * bn // (wm * wn * 32)


# the main loop keeps the downsample's quantized bytes, not its int32 sums, where its quantize
# splits off (`epilogue_split.split_second`): layer1's 128x64 tile 230 -> 168 registers
PACK = True


def packed(params: dict) -> epilogue_split.Split | None:
    """The epilogue split at the shortcut sums' own quantize where `PACK` and it splits: the
    head the main loop applies at the end of their K, the tail the staged store's."""
    return epilogue_split.split_second(params) if PACK else None


def staged_params(params: dict, packed: epilogue_split.Split | None) -> dict:
    """The params whose epilogue the staged store applies: the tail after the bytes the main
    loop keeps (`packed`), else the whole epilogue on the int32 sums it keeps."""
    return packed.tail if packed else epilogue_split.sums_in_registers(params)
