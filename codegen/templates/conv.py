"""conv: N-d convolution (groups, strides, pads, dilations, optional bias, epilogue), NCHW or
NHWC (`params["layout"]`), with two tactics:

- implicit GEMM on the register-tiled main loop of `gemm_tiles`, per group (grid z). NCHW:
  C[M = out channels, N = batch x output positions] = W[M, K = channels x taps] @ im2col(x);
  NHWC (weights OHWI): C[M = batch x output positions, N = out channels] = im2col(x) @ W^T with
  K = taps x channels, channels fastest, so both operands are read along contiguous memory.
- direct: one thread per output element looping over its group's channels and taps — for
  depthwise and other convs with too few output channels per group to fill a GEMM tile.

Layout contract (NHWC): in_shapes[0] = [N, *spatial, C], in_shapes[1] = [K, *kernel, C/groups],
out_shapes[0] = [N, *out_spatial, K]; epilogue inputs in the same physical order.

Layout contract (NC4HW4, 2-d): in_shapes[0] = [N, ceil(C/4), H, W, 4] (`channels` = C; channel c
at block c // 4, lane c % 4), out_shapes[0] = [N, ceil(K/4), P, Q, 4]; in_shapes[1] OIHW, or with
`weight_layout = "C4RS4"` (depthwise: groups = C = K) [ceil(C/4), R, S, 4] with zero pad
channels; the bias stays [K]; epilogue inputs physical. The GEMM reads and writes through its
address functions (pad lanes never read, never written); the direct tactic for depthwise float32
runs one thread per 4 channels of an output pixel (float4 loads and store; pad lanes computed,
don't care); other direct convs one thread per output element.
"""

from __future__ import annotations

import dataclasses

from ember.codegen.scalar_c import (
    c_type,
    compute_type,
    is_half,
    load_float,
    storage_type,
    store_from_float,
)
from ember.codegen.symbolic import upper
from ember.codegen.templates import (
    KernelSpec,
    close_loops,
    conv_sums,
    decompose,
    epilogue_split,
    gemm_epilogue,
    gemm_mma,
    gemm_tma,
    gemm_wgmma,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.elementwise import (
    epilogue_dtypes,
    epilogue_lines,
    epilogue_store,
    epilogue_summary,
    uses_mod,
)
from ember.codegen.templates.gemm_tiles import (
    SM_COUNT,
    Operand,
    candidates,
    dense,
    gemm_for,
    mainloop,
)
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.common import stored_dtype

DIRECT_BELOW = 8  # out channels per group under which the direct tactic runs


class _Conv:
    """A conv's sizes, in logical terms whatever the layout."""

    def __init__(self, params: dict) -> None:
        self.nhwc = params.get("layout", "NCHW") == "NHWC"
        self.packed = params.get("layout", "NCHW") == "NC4HW4"
        self.packed_w = self.packed and params.get("weight_layout") == "C4RS4"
        x_shape, w_shape = list(params["in_shapes"][0]), list(params["in_shapes"][1])
        out_shape = list(params["out_shapes"][0])
        if self.packed:  # [N, C4, H, W, 4] -> logical [N, C, H, W]
            channels = int(params["channels"])
            if self.packed_w:  # [C4, R, S, 4] -> [C, 1, R, S]
                w_shape = [channels, 1, *w_shape[1:-1]]
            x_shape = [x_shape[0], channels, *x_shape[2:-1]]
            out_shape = [out_shape[0], w_shape[0], *out_shape[2:-1]]
            self.blocks, self.out_blocks = -(-channels // 4), -(-w_shape[0] // 4)
        elif self.nhwc:  # physical [N, *S, C] / [K, *R, C/g] -> logical order
            x_shape = [x_shape[0], x_shape[-1], *x_shape[1:-1]]
            w_shape = [w_shape[0], w_shape[-1], *w_shape[1:-1]]
            out_shape = [out_shape[0], out_shape[-1], *out_shape[1:-1]]
        self.nd = len(x_shape) - 2
        self.strides, self.pads = list(params["strides"]), list(params["pads"])
        self.dilations, self.groups = list(params["dilations"]), int(params["groups"])
        self.batch, self.channels, self.spatial = x_shape[0], x_shape[1], x_shape[2:]
        self.cout, self.kernel = w_shape[0], w_shape[2:]
        self.out_spatial = out_shape[2:]
        self.cg, self.mg = self.channels // self.groups, self.cout // self.groups
        self.taps = prod(self.kernel)
        self.k_total = self.cg * self.taps
        self.positions = self.batch * prod(self.out_spatial)
        self.has_bias = len(params["in_shapes"]) > 2
        # a shortcut conv (fuse-shortcut-convs): a second input's 1x1 conv, its channels the
        # weights' last ones, summed into the same result
        self.shortcut = params.get("shortcut")
        if self.shortcut is not None and self.shortcut.get("sums") is None:
            x2 = list(params["in_shapes"][3])
            self.short_channels, self.short_spatial = x2[-1], x2[1:-1]
            self.short_strides = list(self.shortcut["strides"])

    def window(self, slot: str, pixel: str, indent: str = "") -> list[str]:
        """Lines splitting output pixel index `pixel` (batch x positions) into `img<slot>` and
        the window's first input coordinate `s<slot>_<d>` per spatial dim."""
        lines = [f"{indent}const bool ok{slot} = ({pixel}) < {self.positions};"]
        lines += decompose(f"(ok{slot} ? ({pixel}) : 0)", [self.batch, *self.out_spatial],
                           f"p{slot}_", indent)
        lines.append(f"{indent}const int img{slot} = p{slot}_0;")
        for d in range(self.nd):
            lines.append(f"{indent}const int s{slot}_{d} = p{slot}_{d + 1} * {self.strides[d]}"
                         f" - {self.pads[d]};")
        return lines

    def position(self, outer: str = "0") -> str:
        """Row-major flat index of input coordinates `i_<d>` within a plane, after `outer`
        planes (e.g. a channel index)."""
        index = outer
        for d in range(self.nd):
            index = f"({index}) * {self.spatial[d]} + i_{d}"
        return index

    def tap_offset(self, tap: str, d: int) -> str:
        """Kernel offset along spatial dim `d` of flat tap index `tap`."""
        inner = prod(self.kernel[d + 1:])
        return f"({tap} / {inner}) % {self.kernel[d]}" if inner > 1 else f"{tap} % {self.kernel[d]}"

    def tap_coords(self, slot: str, tap: str) -> tuple[list[str], list[str]]:
        """(lines, bound checks) for kernel tap index `tap`: input coordinates `i_<d>`."""
        lines, conds = [], []
        for d in range(self.nd):
            r = self.tap_offset(tap, d)
            lines.append(f"const int i_{d} = s{slot}_{d} + ({r}) * {self.dilations[d]};")
            conds.append(f"(unsigned)i_{d} < {self.spatial[d]}u")
        return lines, conds

    def trivial_window(self) -> bool:
        """1x1 taps, stride 1, no padding: im2col is the input itself."""
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.strides)
                and not any(self.pads))


def _im2col_nchw(cv: _Conv) -> Operand:
    """Element (n = pixel, k = channel x taps) of the NCHW input's im2col matrix (group g)."""
    plane = prod(cv.spatial)

    if cv.trivial_window():
        def setup(slot: str, mn: str) -> list[str]:
            lines = [f"const bool ok{slot} = ({mn}) < {cv.positions};",
                     f"const int q{slot} = ok{slot} ? ({mn}) : 0;"]
            return lines + [f"const size_t at{slot} = ((size_t)(q{slot} / {plane}) * "
                            f"{cv.channels} + (size_t)g * {cv.cg}) * {plane} + q{slot} % {plane};"]

        def load(slot: str, k: str) -> tuple[list[str], str, str]:
            return [], f"ok{slot} && {k} < {cv.k_total}", f"at{slot} + (size_t){k} * {plane}"

        return Operand("in0", False, setup, load)

    def setup(slot: str, mn: str) -> list[str]:
        return cv.window(slot, mn) + [
            f"const size_t at{slot} = ((size_t)img{slot} * {cv.channels} + (size_t)g * {cv.cg})"
            f" * {plane};"]

    def load(slot: str, k: str) -> tuple[list[str], str, str]:
        lines, conds = cv.tap_coords(slot, f"({k} % {cv.taps})")
        index = cv.position(f"{k} / {cv.taps}")
        cond = " && ".join([f"ok{slot}", f"{k} < {cv.k_total}", *conds])
        return lines, cond, f"at{slot} + (size_t)({index})"

    return Operand("in0", False, setup, load)


def _im2col_nhwc(cv: _Conv) -> Operand:
    """Element (m = pixel, k = taps x channel, channel fastest) of the NHWC input's im2col."""
    def setup(slot: str, mn: str) -> list[str]:
        return cv.window(slot, mn) + [
            f"const size_t at{slot} = (size_t)img{slot} * {prod(cv.spatial) * cv.channels}"
            f" + (size_t)g * {cv.cg};"]

    def load(slot: str, k: str) -> tuple[list[str], str, str]:
        lines, conds = cv.tap_coords(slot, f"({k} / {cv.cg})")
        pos = cv.position()
        cond = " && ".join([f"ok{slot}", f"{k} < {cv.k_total}", *conds])
        return lines, cond, f"at{slot} + (size_t)({pos}) * {cv.channels} + {k} % {cv.cg}"

    return Operand("in0", True, setup, load)


def _im2col_packed(cv: _Conv) -> Operand:
    """Element (n = pixel, k = channel x taps) of the NC4HW4 input's im2col matrix (group g):
    channel ch at ((img * C4 + ch / 4) * H * W + pos) * 4 + ch % 4."""
    plane = prod(cv.spatial)

    def setup(slot: str, mn: str) -> list[str]:
        return cv.window(slot, mn) + [
            f"const size_t at{slot} = (size_t)img{slot} * {cv.blocks * plane * 4};"]

    def load(slot: str, k: str) -> tuple[list[str], str, str]:
        lines, conds = cv.tap_coords(slot, f"({k} % {cv.taps})")
        lines.append(f"const int ch_ = g * {cv.cg} + {k} / {cv.taps};")
        pos = cv.position()
        cond = " && ".join([f"ok{slot}", f"{k} < {cv.k_total}", *conds])
        return lines, cond, (f"at{slot} + ((size_t)(ch_ >> 2) * {plane} + ({pos})) * 4 + "
                             "(ch_ & 3)")

    return Operand("in0", False, setup, load)


def _gemm(name: str, params: dict, cv: _Conv, dtype: str) -> KernelSpec:
    t = c_type(dtype)
    out_plane = prod(cv.out_spatial)
    weights = "(size_t)g * " + str(cv.mg * cv.k_total)
    if cv.nhwc:
        m_size, n_size = cv.positions, cv.mg
        a_op, b_op = _im2col_nhwc(cv), dense("in1", cv.mg, cv.k_total, cv.k_total, 1, weights)
    else:
        m_size, n_size = cv.mg, cv.positions
        a_op = dense("in1", cv.mg, cv.k_total, cv.k_total, 1, weights)
        b_op = _im2col_packed(cv) if cv.packed else _im2col_nchw(cv)
    gemm = gemm_for(params, m_size, n_size, cv.k_total, cv.groups)
    tile = gemm.tile

    def col_setup(n: str, indent: str) -> list[str]:
        if cv.nhwc:
            return []
        if cv.packed:
            return [f"{indent}const size_t obase = (size_t)({n} / {out_plane}) * "
                    f"{cv.out_blocks * out_plane * 4} + (size_t)({n} % {out_plane}) * 4;"]
        return [f"{indent}const size_t obase = (size_t)({n} / {out_plane}) * "
                f"{cv.cout * out_plane} + {n} % {out_plane};"]

    def store(m: str, n: str, value: str, indent: str) -> list[str]:
        if cv.nhwc:
            oc, at = f"g * {cv.mg} + {n}", f"(size_t){m} * {cv.cout} + g * {cv.mg} + {n}"
        elif cv.packed:
            oc = f"(g * {cv.mg} + {m})"
            at = f"obase + (size_t)({oc} >> 2) * {out_plane * 4} + ({oc} & 3)"
        else:
            oc, at = f"g * {cv.mg} + {m}", f"obase + (size_t)(g * {cv.mg} + {m}) * {out_plane}"
        lines = [f"{indent}const size_t oi = {at};", f"{indent}{t} acc = {value};"]
        if cv.has_bias:
            lines.append(f"{indent}acc += in2[{oc}];")
        return lines + epilogue_lines(params, "acc", "oi", indent) + [
            f"{indent}out0[oi] = {epilogue_store(params, 'acc')};"]

    body = [f"    const int g = blockIdx.z / {gemm.splits};  // group"]
    body += mainloop(gemm, m_size, n_size, cv.k_total, a_op, b_op, dtype,
                     f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}", store, col_setup)
    layout = "NHWC, weights OHWI" if cv.nhwc else "NC4HW4, weights OIHW" if cv.packed \
        else "NCHW"
    text = source(_title(params, cv, dtype),
                  [f"tactic: implicit GEMM ({layout}), {gemm}, double-buffered shared memory, "
                   "im2col gathered on the fly; group on grid z",
                   f"GEMM per group: M={m_size} N={n_size} K={cv.k_total}",
                   *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)],
                            [stored_dtype(params)],
                            launch_bounds=(tile.threads, 512 // tile.threads),
                            workspace=gemm.splits > 1, halves=is_half(stored_dtype(params))),
                  body, prelude=uses_mod(params))
    grid = gemm.grid(m_size, n_size, cv.groups)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA conv: grid {grid} is too large")
    return KernelSpec(text, grid, (tile.threads, 1, 1), 0,
                      *gemm.workspace_bytes(m_size, n_size, cv.groups,
                                           8 if dtype == "float64" else 4))


def _gemm_mma(name: str, params: dict, cv: _Conv, dtype: str) -> KernelSpec:
    """FP16/BF16 implicit GEMM on tensor cores: `gemm_mma`'s mma.sync loop, or `gemm_wgmma`'s
    where the tactic names it (NHWC, channels in multiples of 8, an sm_90 build)."""
    if gemm_tma.is_tma(params.get("tactic")):
        if dtype == "float32":
            raise ValueError("a TMA tactic takes FP16/BF16 or INT8 operands, not FP32 (TF32)")
        return _gemm_tma(name, params, cv, dtype)
    out_plane = prod(cv.out_spatial)
    m_size, n_size, a_op, b_op = _mma_operands(cv)
    gemm, wgmma = gemm_wgmma.tensor_core_gemm(params, dtype, a_op, b_op, m_size, n_size,
                                              cv.k_total, cv.groups)
    tile, splits = gemm.tile, gemm.splits

    def store(m: str, n: str, value: str, indent: str) -> list[str]:
        if cv.nhwc:
            oc, at = f"g * {cv.mg} + {n}", f"(size_t){m} * {cv.cout} + g * {cv.mg} + {n}"
        else:
            oc = f"g * {cv.mg} + {m}"
            at = (f"(size_t)({n} / {out_plane}) * {cv.cout * out_plane} + (size_t)({oc}) * "
                  f"{out_plane} + {n} % {out_plane}")
        bias = ([f"{indent}acc += {load_float(f'in2[{oc}]', dtype)};"] if cv.has_bias
                else [])
        return [f"{indent}const size_t oi = {at};", f"{indent}float acc = {value};", *bias,
                *epilogue_lines(params, "acc", "oi", indent),
                f"{indent}out0[oi] = {epilogue_store(params, 'acc')};"]

    # staged 16-byte stores hold the kernel's own half type: a fused cast stores element-wise
    staged = cv.nhwc and stored_dtype(params) == dtype and gemm_epilogue.row_store(
        params, dtype, n_size, [cv.cout],
        lambda m, n: f"(size_t){m} * {cv.cout} + g * {cv.mg} + {n}",
        lambda n: f"g * {cv.mg} + {n}",
        (lambda n: load_float(f"in2[g * {cv.mg} + {n}]", dtype)) if cv.has_bias else None)
    body = [f"    const int g = blockIdx.z / {splits};  // group"]
    m0, n0 = f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}"
    if wgmma:
        order = gemm_wgmma.tap_order(cv.k_total, cv.taps, dtype) if cv.nhwc else None
        body += gemm_wgmma.mainloop(gemm, m_size, n_size, cv.k_total, a_op, b_op, dtype, m0, n0,
                                    staged or store, order)
        helpers = gemm_wgmma.helpers(dtype, tile.bn)
    else:
        body += gemm_mma.mainloop(gemm, m_size, n_size, cv.k_total, a_op, b_op, dtype, m0, n0,
                                  staged or store)
        helpers = gemm_mma.helpers(dtype)
    if staged:
        helpers += gemm_epilogue.helpers(dtype)
    layout = "NHWC, weights OHWI" if cv.nhwc else "NCHW"
    text = source(_title(params, cv, dtype),
                  [f"tactic: implicit GEMM on tensor cores ({layout}), {gemm}, FP32 "
                   "accumulation, im2col gathered on the fly; group on grid z",
                   f"GEMM per group: M={m_size} N={n_size} K={cv.k_total}",
                   *epilogue_summary(params),
                   *([gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")] if wgmma else [])],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)],
                            [stored_dtype(params)], launch_bounds=(tile.threads, tile.resident),
                            workspace=splits > 1, halves=True),
                  body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m_size, n_size, cv.groups)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA conv: grid {grid} is too large")
    shared = gemm_wgmma.kernel_shared(gemm, cv.k_total, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared,
                      *gemm.workspace_bytes(m_size, n_size, cv.groups))


def _mma_operands(cv: _Conv) -> tuple[int, int, Operand, Operand]:
    """(M, N, A, B) of the tensor-core implicit GEMM per group: NHWC as the FP32 form, with
    16-byte chunks of 8 channels where C and C/groups are multiples of 8; NCHW with the
    im2col gathered element by element."""
    weights = "(size_t)g * " + str(cv.mg * cv.k_total)
    w_vec = {"vec4": cv.k_total % 4 == 0, "vec8": cv.k_total % 8 == 0}
    if cv.nhwc:
        a_op = dataclasses.replace(_im2col_nhwc(cv),
                                   vec4=cv.cg % 4 == 0 and cv.channels % 4 == 0,
                                   vec8=cv.cg % 8 == 0 and cv.channels % 8 == 0)
        return (cv.positions, cv.mg, a_op,
                dense("in1", cv.mg, cv.k_total, cv.k_total, 1, weights, **w_vec))
    return (cv.mg, cv.positions,
            dense("in1", cv.mg, cv.k_total, cv.k_total, 1, weights, **w_vec),
            _im2col_nchw(cv))


def _tma_operands(cv: _Conv) -> tuple[gemm_tma.TmaOperand, gemm_tma.TmaOperand] | None:
    """(A, B) as the copy engine reads them (`gemm_tma`) where the conv is a plain GEMM over
    dense rows: NHWC, 1x1, stride 1, no padding, one group (A the input's pixels x channels,
    B the OHWI weights); None otherwise. Sizes in the operands' 2-byte elements."""
    if not cv.nhwc or cv.groups != 1 or cv.taps != 1 or any(s != 1 for s in cv.strides) \
            or any(cv.pads):
        return None
    a = gemm_tma.operand(0, cv.positions, cv.k_total, cv.channels, [], [])
    b = gemm_tma.operand(1, cv.mg, cv.k_total, cv.k_total, [], [])
    return (a, b) if a is not None and b is not None else None


def _im2col_operands(cv: _Conv, dtype: str
                     ) -> tuple[gemm_tma.Im2colOperand, gemm_tma.TmaOperand] | None:
    """(A, B) where the copy engine reads a 2-d NHWC conv that is not a plain GEMM (taps,
    strides or padding) through an im2col map (`gemm_tma.Im2colOperand`): FP16/BF16, or INT8
    with `cv` counting its channels in byte pairs (`_byte_conv`: the map's 2-byte elements, zero
    bytes off the image), one group, channels a multiple of 64 (whole 128-byte rows: 128 INT8
    channels), static sizes, the output's pixels the windows the map walks, the filter's reach
    and the window corners within the copy's ranges; None otherwise."""
    sizes = [cv.batch, cv.channels, *cv.spatial, *cv.out_spatial, cv.cout]
    if not cv.nhwc or cv.nd != 2 or cv.groups != 1 \
            or dtype not in (*gemm_mma.HALF_TYPES, gemm_mma.INT8) \
            or _tma_operands(cv) is not None or any(not isinstance(v, int) for v in sizes) \
            or cv.channels % (gemm_wgmma.ROW_BYTES // 2) or cv.positions >= 2**31:
        return None
    (h, w), (p, q) = cv.spatial, cv.out_spatial
    reach = [(k - 1) * d for k, d in zip(cv.kernel, cv.dilations, strict=True)]
    if max(reach) > gemm_tma.IM2COL_OFFSET_MAX:  # the copy's filter offsets
        return None
    # the copy engine walks the windows the map's corners and strides allow: they must be the
    # output's pixels
    walked = [(size + cv.pads[i] + cv.pads[i + 2] - reach[i] - 1) // cv.strides[i] + 1
              for i, size in enumerate(cv.spatial)]
    if walked != [p, q]:
        return None
    a = gemm_tma.Im2colOperand((cv.channels, w, h, cv.batch), (p, q),
                               (cv.kernel[0], cv.kernel[1]), (cv.strides[0], cv.strides[1]),
                               (cv.pads[0], cv.pads[1], cv.pads[2], cv.pads[3]),
                               (cv.dilations[0], cv.dilations[1]))
    try:
        a.tensor_map(64)
    except ValueError:  # corners or strides past what a 4-d map takes
        return None
    b = gemm_tma.operand(1, cv.mg, cv.k_total, cv.k_total, [], [])
    return (a, b) if b is not None else None


def _shortcut_operands(cv: _Conv, dtype: str) -> tuple[
        gemm_tma.TmaOperand, gemm_tma.TmaOperand | gemm_tma.Im2colOperand,
        gemm_tma.TmaOperand] | None:
    """(A, A2, B) of a shortcut conv as the copy engine reads them: A the first input's rows
    (a plain GEMM: 1x1, stride 1, no padding), A2 the second input's (the same pixels, or every
    stride-th one through a 1x1 im2col map), B the weights over both inputs' channels; FP16/
    BF16, NHWC, channels of both a multiple of 64, static sizes. None otherwise."""
    plain = _tma_operands(cv)
    sizes = [cv.batch, cv.channels, cv.short_channels, *cv.short_spatial, *cv.out_spatial]
    row = gemm_wgmma.ROW_BYTES // 2
    if plain is None or cv.nd != 2 or dtype not in gemm_mma.HALF_TYPES \
            or any(not isinstance(v, int) for v in sizes) or cv.channels % row \
            or cv.short_channels % row:
        return None
    k = cv.k_total + cv.short_channels
    b = gemm_tma.operand(1, cv.mg, k, k, [], [])
    (h, w), (p, q) = cv.short_spatial, cv.out_spatial
    a2: gemm_tma.TmaOperand | gemm_tma.Im2colOperand | None
    if cv.short_strides == [1, 1]:
        a2 = gemm_tma.operand(3, cv.positions, cv.short_channels, cv.short_channels, [], []) \
            if [h, w] == [p, q] else None
    else:
        walked = [(size - 1) // st + 1 for size, st in zip((h, w), cv.short_strides,
                                                          strict=True)]
        a2 = gemm_tma.Im2colOperand((cv.short_channels, w, h, cv.batch), (p, q), (1, 1),
                                    (cv.short_strides[0], cv.short_strides[1]), (0, 0, 0, 0),
                                    (1, 1), operand=3) if walked == [p, q] else None
        try:
            if a2 is not None:
                a2.tensor_map(64)
        except ValueError:  # strides past what a 4-d map takes
            a2 = None
    return (plain[0], a2, b) if a2 is not None and b is not None else None


def _shortcut_tactics(params: dict, cv: _Conv, arch: str | None, sms: int) -> list[dict]:
    """A shortcut conv's tactics: TMA tiles (the only loop that reads a second A), the cost
    model's best `SHORTCUT_TOP` and its best two of two blocks a multiprocessor (short K: the
    loads and the epilogue take the time); none off sm_90 or where the copy engine cannot read
    it."""
    dtype = params["out_dtypes"][0]
    if not _tensor_core(params) or not gemm_wgmma.targets(arch) \
            or _shortcut_operands(cv, dtype) is None:
        return []
    tiles = gemm_tma.ranked(cv.positions, cv.mg, cv.k_total + cv.short_channels, 1, sms)
    found = tiles[:SHORTCUT_TOP]
    found += [t for t in tiles if t.tile.resident == 2][:2]
    return [g.tactic() for g in dict.fromkeys(found)]


SHORTCUT_TOP = 4  # TMA tiles the autotuner times for a shortcut conv (and two two-resident ones)


def _gemm_tma(name: str, params: dict, cv: _Conv, dtype: str) -> KernelSpec:
    """A 1x1 NHWC conv as a GEMM on wgmma fed by the copy engine (`gemm_tma`): FP16/BF16
    operands, or int8 as pairs (`cv` then counts channels in pairs), the tactic names it; an
    FP16/BF16 conv with taps, strides or padding through an im2col map (`_im2col_operands`);
    a shortcut conv with its second input through a third map (`_shortcut_operands`)."""
    second = None
    if cv.shortcut is not None:
        found = _shortcut_operands(cv, dtype)
        if found is None:
            raise UnsupportedError(
                "CUDA conv: a shortcut conv runs on the copy engine: FP16/BF16 NHWC, its first "
                "input a 1x1 stride-1 unpadded conv's, both inputs' channels a multiple of 64, "
                "static sizes, the second input's pixels every stride-th of the output's")
        a1, a2, b1 = found
        operands: tuple | None = (a1, b1)
        second = (cv.k_total, a2)
    else:
        operands = _tma_operands(cv) or _im2col_operands(cv, dtype)
    if operands is None:
        raise ValueError("tactic tma needs an NHWC conv that is a plain GEMM (1x1, stride 1, no "
                         "padding, one group, rows of channels a multiple of 16 bytes) or, in "
                         "FP16/BF16 or INT8, a 2-d one with one group, channels in whole "
                         "128-byte rows, static sizes, a filter reaching at most "
                         f"{gemm_tma.IM2COL_OFFSET_MAX} pixels and pads within 127")
    a_t, b_t = operands
    gemm = gemm_tma.tma_for(params["tactic"])
    tile = gemm.tile
    int8 = dtype in gemm_mma.BYTE_OPERANDS  # 8-bit operands: int8 or E4M3 pairs
    stored = stored_dtype(params)
    m_size, n_size = cv.positions, cv.mg

    def index(m: str, n: str) -> str:
        return f"(size_t){m} * {cv.cout} + {n}"

    if int8:
        store = gemm_epilogue.sums_store(params, index, lambda n: n, gemm_mma.sums_type(dtype))
        staged = gemm_epilogue.byte_row_store(params, n_size, [cv.cout], index, lambda n: n,
                                              tile.shared_bytes() - 1024, tile.bm, tile.bn,
                                              gemm_mma.staged_sums(dtype))
    else:
        def store(m: str, n: str, value: str, indent: str) -> list[str]:
            bias = ([f"{indent}acc += {load_float(f'in2[{n}]', dtype)};"] if cv.has_bias
                    else [])
            return [f"{indent}const size_t oi = {index(m, n)};",
                    f"{indent}float acc = {value};", *bias,
                    *epilogue_lines(params, "acc", "oi", indent),
                    f"{indent}out0[oi] = {epilogue_store(params, 'acc')};"]

        staged = stored == dtype and gemm_epilogue.row_store(
            params, dtype, n_size, [cv.cout], index, lambda n: n,
            (lambda n: load_float(f"in2[{n}]", dtype)) if cv.has_bias else None)
    k_size = cv.k_total + (cv.short_channels if second else 0)
    body = gemm_tma.mainloop(gemm, m_size, n_size, k_size, a_t, b_t, dtype,
                             f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}",
                             staged or store, second)
    im2col = any(isinstance(a, gemm_tma.Im2colOperand)
                 for a in (a_t, second[1] if second else None))
    helpers = gemm_tma.helpers(dtype, tile.bn) + (gemm_tma.IM2COL_LOAD if im2col else "")
    if staged:
        helpers += gemm_epilogue.helpers(stored)
    k = k_size * (2 if int8 else 1)
    what = ("implicit GEMM, the input read through an im2col tensor map (one copy per tap and "
            "64 channels)" if im2col and not second else "1x1 conv as a GEMM")
    if second:
        what += (f" over both inputs' channels (the shortcut's {cv.short_channels} through "
                 f"{'a strided im2col' if im2col else 'a third'} tensor map, strides "
                 f"{cv.short_strides})")
    kind, _, _, sums = gemm_mma.BYTE_NAMES.get(dtype, ("", "", "", "FP32"))
    text = source(_title(params, _Conv(params) if int8 else cv,
                         f"{dtype} -> {sums}" if int8 else dtype),
                  [f"tactic: {what} on {kind + ' ' if int8 else ''}tensor cores "
                   f"(NHWC, weights OHWI), {gemm}, {sums} accumulation",
                   f"GEMM: M={m_size} N={n_size} K={k}",
                   *([gemm_epilogue.staged_comment(dtype, stored, staged)]
                     if int8 and staged else []),
                   *epilogue_summary(params),
                   gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)], [stored],
                            launch_bounds=(tile.threads, tile.resident), halves=True,
                            tensor_maps=gemm_tma.parameters(second is not None)),
                  body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m_size, n_size, 1)
    if grid[1] > 65535:
        raise UnsupportedError(f"CUDA conv: grid {grid} is too large")
    maps = (a_t.tensor_map(tile.bm), b_t.tensor_map(tile.bn),
            *((second[1].tensor_map(tile.bm),) if second else ()))
    shared = gemm_wgmma.kernel_shared(gemm, k_size, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared, tensor_maps=maps)


def _direct(name: str, params: dict, cv: _Conv, dtype: str) -> KernelSpec:
    t = compute_type(dtype)  # float for FP16/BF16: loaded into float, stored converted
    total = cv.positions * cv.cout
    itype = index_type(total, prod(params["in_shapes"][0]), prod(params["out_shapes"][0]))
    if cv.nhwc:
        order = [cv.batch, *cv.out_spatial, cv.cout]
    else:
        order = [cv.batch, cv.cout, *cv.out_spatial]
    body = [grid_stride_loop(total, itype)]
    body += decompose("i", order, "o", "        ", itype)
    oc = f"o{len(order) - 1}" if cv.nhwc else "o1"
    space = [f"o{d + 1}" for d in range(cv.nd)] if cv.nhwc else [f"o{d + 2}"
                                                                  for d in range(cv.nd)]
    body += [f"        const int oc = {oc}, g = oc / {cv.mg};",
             f"        {t} acc = 0;",
             f"        for (int c = 0; c < {cv.cg}; ++c) {{",
             f"            for (int tap = 0; tap < {cv.taps}; ++tap) {{"]
    conds, pos = [], cv.position()
    for d in range(cv.nd):
        body.append(f"                const int i_{d} = {space[d]} * {cv.strides[d]} - "
                    f"{cv.pads[d]} + ({cv.tap_offset('tap', d)}) * {cv.dilations[d]};")
        conds.append(f"(unsigned)i_{d} < {cv.spatial[d]}u")
    plane = prod(cv.spatial)
    if cv.nhwc:
        x_at = (f"((size_t)o0 * {plane} + ({pos})) * {cv.channels} + g * {cv.cg} + c")
        w_at = f"((size_t)oc * {cv.taps} + tap) * {cv.cg} + c"
    elif cv.packed:
        ch = f"(g * {cv.cg} + c)"
        x_at = f"(((size_t)o0 * {cv.blocks} + ({ch} >> 2)) * {plane} + ({pos})) * 4 + ({ch} & 3)"
        w_at = (f"((size_t)(oc >> 2) * {cv.taps} + tap) * 4 + (oc & 3)" if cv.packed_w
                else f"((size_t)oc * {cv.cg} + c) * {cv.taps} + tap")
    else:
        x_at = f"((size_t)o0 * {cv.channels} + g * {cv.cg} + c) * {plane} + ({pos})"
        w_at = f"((size_t)oc * {cv.cg} + c) * {cv.taps} + tap"
    body += [f"                if ({' && '.join(conds) or 'true'}) "
             f"acc += {load_float(f'in0[{x_at}]', dtype)} * {load_float(f'in1[{w_at}]', dtype)};",
             "            }",
             "        }"]
    if cv.has_bias:
        body.append(f"        acc += {load_float('in2[oc]', dtype)};")
    out = "i"
    if cv.packed:
        out = "oi"
        out_plane = prod(cv.out_spatial)
        body.append(f"        const size_t oi = (((size_t)o0 * {cv.out_blocks} + (oc >> 2)) * "
                    f"{out_plane} + (i % {out_plane})) * 4 + (oc & 3);")
    body += epilogue_lines(params, "acc", out, "        ")
    body += [f"        out0[{out}] = {store_from_float('acc', stored_dtype(params))};", "    }"]
    fmt = "NHWC" if cv.nhwc else "NC4HW4" if cv.packed else "NCHW"
    text = source(_title(params, cv, dtype),
                  ["tactic: direct, one thread per output element over its group's "
                   f"{cv.cg} channel(s) x {cv.taps} taps ({fmt})",
                   *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)],
                            [stored_dtype(params)], halves=True),
                  body, prelude=uses_mod(params))
    grid, block = grid_1d(total)
    return KernelSpec(text, grid, block, 0)


def _chunked_depthwise(params: dict, cv: _Conv, dtype: str) -> bool:
    """An NHWC depthwise conv of halves or floats whose channels come in 16-byte chunks: the
    direct tactic takes a chunk of channels per thread."""
    size = gemm_epilogue.chunk(dtype) if dtype in (*gemm_mma.HALF_TYPES, "float32") else 0
    return (cv.nhwc and size > 0 and cv.cg == 1 and cv.mg == 1 and cv.channels % size == 0
            and stored_dtype(params) == dtype and all(isinstance(d, int) for d in
                                                      (cv.positions, *cv.spatial)))


# a depthwise conv's weights up to this size are staged in shared memory by tap
DEPTHWISE_SHARED_BYTES = 32 * 1024


def _direct_chunks(name: str, params: dict, cv: _Conv, dtype: str) -> KernelSpec:
    """Depthwise NHWC, one thread per 16-byte chunk of an output pixel's channels: each tap's
    inputs are one 16-byte load, the outputs one 16-byte store (neighbouring threads on
    neighbouring chunks), the epilogue applied to the chunk in registers. The taps are unrolled
    and a tap outside the input reads zeros (no branch), so a thread's loads are in flight
    together; the weights ([channel][tap] in memory) are first copied to shared memory by tap
    where they fit (`DEPTHWISE_SHARED_BYTES`), a tap's weights for a chunk then one 16-byte
    read."""
    size = gemm_epilogue.chunk(dtype)
    chunks = cv.channels // size
    total = cv.positions * chunks
    itype = index_type(total * size, prod(params["in_shapes"][0]))
    plane = prod(cv.spatial)
    t = storage_type(dtype)
    weights = cv.taps * cv.channels
    shared = weights * (16 // size) <= DEPTHWISE_SHARED_BYTES
    body = []
    if shared:
        body += [f"    __shared__ __align__(16) {t} ws[{weights}];  // [tap][channel]",
                 f"    for (int j = threadIdx.x; j < {weights}; j += blockDim.x)",
                 f"        ws[(j % {cv.taps}) * {cv.channels} + j / {cv.taps}] = in1[j];",
                 "    __syncthreads();"]
    body += [grid_stride_loop(total, itype),
             f"        const {itype} pix = i / {chunks};",
             f"        const int c0 = (int)(i % {chunks}) * {size};"]
    body += decompose("pix", [cv.batch, *cv.out_spatial], "o", "        ", itype)
    conds = []
    taps = []
    for d in range(cv.nd):
        taps.append(f"            const int i_{d} = o{d + 1} * {cv.strides[d]} - {cv.pads[d]} + "
                    f"({cv.tap_offset('tap', d)}) * {cv.dilations[d]};")
        conds.append(f"(unsigned)i_{d} < {cv.spatial[d]}u")
    weight = (load_float("w.e[e]", dtype) if shared
              else load_float(f"in1[(c0 + e) * {cv.taps} + tap]", dtype))
    body += [f"        float acc[{size}];",
             "        #pragma unroll",
             f"        for (int e = 0; e < {size}; ++e) acc[e] = 0.0f;",
             "        #pragma unroll",
             f"        for (int tap = 0; tap < {cv.taps}; ++tap) {{",
             *taps,
             "            pack16 x;",
             "            x.v = make_uint4(0, 0, 0, 0);",
             f"            if ({' && '.join(conds) or 'true'})",
             f"                x.v = __ldg((const uint4*)&in0[((size_t)o0 * {plane} + "
             f"({cv.position()})) * {cv.channels} + c0]);",
             *(["            pack16 w;",
                f"            w.v = *(const uint4*)&ws[tap * {cv.channels} + c0];"]
               if shared else []),
             "            #pragma unroll",
             f"            for (int e = 0; e < {size}; ++e)",
             f"                acc[e] += {load_float('x.e[e]', dtype)} * {weight};",
             "        }",
             f"        const size_t oi = (size_t)pix * {cv.cout} + c0;",
             "        pack16 h;",
             "        #pragma unroll",
             f"        for (int e = 0; e < {size}; ++e)",
             "            h.e[e] = " + store_from_float(
                 "acc[e]" + (f" + {load_float('in2[c0 + e]', dtype)}" if cv.has_bias else ""),
                 dtype) + ";",
             *gemm_epilogue.chunk_epilogue(params, dtype, "h", "c0", "        "),
             f"        {gemm_epilogue.store16('&out0[oi]', 'h.v')}",
             "    }"]
    text = source(_title(params, cv, dtype),
                  [f"tactic: direct depthwise (NHWC), one thread per {size} channels of an "
                   f"output pixel over {cv.taps} taps, 16-byte loads and stores"
                   + (", weights staged in shared memory by tap" if shared else ""),
                   *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)], [dtype],
                            halves=True),
                  body, prelude=uses_mod(params), helpers=gemm_epilogue.helpers(dtype))
    grid, block = grid_1d(total)
    return KernelSpec(text, grid, block, 0)


def _direct_packed(name: str, params: dict, cv: _Conv) -> KernelSpec:
    """Depthwise float32 in NC4HW4: one thread per (image, channel block, output pixel), the 4
    lanes in a float4 (input, packed weight and result)."""
    out_plane, plane = prod(cv.out_spatial), prod(cv.spatial)
    total = cv.batch * cv.out_blocks * out_plane
    itype = index_type(total * 4, prod(params["in_shapes"][0]))
    body = [grid_stride_loop(total, itype)]
    body += decompose("i", [cv.batch * cv.out_blocks, *cv.out_spatial], "o", "        ", itype)
    body += ["        const int cb = o0 % " + str(cv.out_blocks) + ";",
             f"        const float4* x = (const float4*)in0 + (size_t)o0 * {plane};",
             f"        const float4* w = (const float4*)in1 + (size_t)cb * {cv.taps};",
             "        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);"]
    indent = "        "
    for d in range(cv.nd):
        body.append(f"{indent}for (int r{d} = 0; r{d} < {cv.kernel[d]}; ++r{d}) {{")
        indent += "    "
        body.append(f"{indent}const int i_{d} = o{d + 1} * {cv.strides[d]} - {cv.pads[d]} + "
                    f"r{d} * {cv.dilations[d]};")
        body.append(f"{indent}if ((unsigned)i_{d} >= {cv.spatial[d]}u) continue;")
    pos, tap = cv.position(), "0"
    for d in range(cv.nd):
        tap = f"({tap}) * {cv.kernel[d]} + r{d}"
    body += [f"{indent}const float4 v = x[{pos}];",
             f"{indent}const float4 k = w[{tap}];",
             f"{indent}acc.x += v.x * k.x; acc.y += v.y * k.y; "
             "acc.z += v.z * k.z; acc.w += v.w * k.w;"]
    indent = close_loops(body, indent, cv.nd)
    lanes = ("x", "y", "z", "w")
    if cv.has_bias:
        for lane, name_ in enumerate(lanes):
            body.append(f"        if (cb * 4 + {lane} < {cv.cout}) acc.{name_} += in2[cb * 4 + "
                        f"{lane}];")
    if params.get("epilogue") is not None:
        for lane, name_ in enumerate(lanes):
            body.append("        {")
            body.append(f"            const size_t oi = (size_t)i * 4 + {lane};")
            body.append(f"            float a = acc.{name_};")
            body += epilogue_lines(params, "a", "oi", "            ")
            body += [f"            acc.{name_} = a;", "        }"]
    body += ["        ((float4*)out0)[i] = acc;", "    }"]
    text = source(_title(params, cv, "float32"),
                  ["tactic: direct vectorized (NC4HW4, weights C4RS4), one thread per 4 channels "
                   f"of an output pixel over {cv.taps} taps, float4 loads and store",
                   *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)], ["float32"]),
                  body, prelude=uses_mod(params))
    grid, block = grid_1d(total)
    return KernelSpec(text, grid, block, 0)


def _byte_conv(params: dict) -> _Conv:
    """An 8-bit conv's sizes with its channels counted in byte pairs (16-bit units), as the
    tensor-core loop reads them: NHWC input, OHWI weight, channels (per group) % 16 == 0; else
    UnsupportedError."""
    cv = _Conv(params)
    if not cv.nhwc or cv.cg % 16 or cv.channels % 16 or cv.has_bias:
        raise UnsupportedError(
            f"CUDA conv: {gemm_mma.byte_operands(params)} operands need NHWC, channels per "
            f"group in multiples of 16 and no bias (layout {params.get('layout', 'NCHW')}, "
            f"{cv.cg} channels per group)")
    x_shape, w_shape = (list(s) for s in params["in_shapes"][:2])
    pairs = dict(params, in_shapes=[[*x_shape[:-1], x_shape[-1] // 2],
                                    [*w_shape[:-1], w_shape[-1] // 2]])
    return _Conv(pairs)


def _gemm_bytes(name: str, params: dict, dtype: str) -> KernelSpec:
    """8-bit implicit GEMM on tensor cores: INT8 (s8 x s8 -> s32, exact sums) or E4M3 (-> f32
    sums): the mma.sync m16n8k32 loop, or on sm_90 the wgmma k32 loop where the tactic names
    it, over byte pairs as 16-bit elements (NHWC im2col, OHWI weights, 16-byte chunks), the
    dequantizing epilogue fold-qdq leaves fused."""
    shortcut = conv_sums.gemm(params) if conv_sums.is_sums(params) else None
    if shortcut is not None:  # (y's conv: the rows, the output)
        y, w = params["in_shapes"][:2]
        cv = _byte_conv(dict(params, in_shapes=[y, [w[0], 1, 1, y[-1]]]))
        m_size, n_size, k_size = shortcut.m, shortcut.n, shortcut.k
        a_op, b_op = shortcut.a, shortcut.b
    else:
        cv = _byte_conv(params)
        if gemm_tma.is_tma(params.get("tactic")):
            return _gemm_tma(name, params, cv, dtype)
        m_size, n_size, a_op, b_op = _mma_operands(cv)
        a_op, b_op = dataclasses.replace(a_op, ptr="x16"), dataclasses.replace(b_op, ptr="w16")
        k_size = cv.k_total
    gemm, wgmma = gemm_wgmma.tensor_core_gemm(params, dtype, a_op, b_op, m_size,
                                              n_size, k_size, cv.groups, split_k=False)
    if shortcut is not None and (wgmma or dtype != gemm_mma.INT8):
        raise UnsupportedError(f"CUDA conv: shortcut sums run on an INT8 mma.sync tactic, not "
                               f"{params.get('tactic')} ({dtype})")
    tile = gemm.tile
    stored = stored_dtype(params)
    def index(m: str, n: str) -> str:
        return f"(size_t){m} * {cv.cout} + g * {cv.mg} + {n}"

    def column(n: str) -> str:
        return f"g * {cv.mg} + {n}"

    store = gemm_epilogue.sums_store(params, index, column, gemm_mma.sums_type(dtype))
    # 8-bit results: the sums staged through shared memory, 16-byte stores
    # a shortcut's sums: their own quantize at the end of their K (bytes in registers), the
    # rest of the epilogue in the staged store's head
    packed = conv_sums.packed(params) if shortcut else None
    staged = gemm_epilogue.byte_row_store(
        conv_sums.staged_params(params, packed) if shortcut else params,
        n_size, [cv.cout, cv.mg], index, column, tile.shared_bytes() - (1024 if wgmma else 0),
        tile.bm, tile.bn, gemm_mma.staged_sums(dtype),
        band=None if wgmma else tile.bm // tile.wm)
    if shortcut is not None and (staged is None or staged.head is None or shortcut.input in
                                 epilogue_split.reads(staged.params)):
        raise UnsupportedError("CUDA conv: shortcut sums need their epilogue quantized in the "
                               "fragments (one-element and per-column inputs besides the sums) "
                               "and a staged tile of its bytes")
    kind, ptx, unit, sums_t = gemm_mma.BYTE_NAMES[dtype]

    body = ["    const int g = blockIdx.z;  // group",
            "    const unsigned short* x16 = (const unsigned short*)in0;",
            "    const unsigned short* w16 = (const unsigned short*)in1;"]
    if shortcut is not None:
        body.append("    const unsigned short* s16 = (const unsigned short*)"
                    f"in{2 + shortcut.input};  // the shortcut conv's input")
    m0, n0 = f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}"
    if wgmma:
        body += gemm_wgmma.mainloop(gemm, m_size, n_size, k_size, a_op, b_op,
                                    dtype, m0, n0, staged or store)
        helpers, loop = gemm_wgmma.helpers(dtype, tile.bn), f"{gemm}, k32 {ptx}"
    else:
        def second_head(col: str, v0: str, v1: str, indent: str) -> list[str]:
            return gemm_epilogue.head_pair(packed.head, column, packed.dtype, col, v0, v1,
                                           "n0", n_size, indent, second=(v0, v1))

        body += gemm_mma.mainloop(gemm, m_size, n_size, k_size, a_op, b_op, dtype,
                                  m0, n0, staged or store,
                                  shortcut.second if shortcut else None,
                                  second_head if packed else None)
        helpers, loop = gemm_mma.helpers(dtype), f"mma.sync m16n8k32 {ptx}, {tile}"
    if staged:
        helpers += gemm_epilogue.helpers(stored)
    text = source(_title(params, _Conv(params), f"{dtype} -> {sums_t}"),
                  [f"tactic: implicit GEMM on {kind} tensor cores (NHWC, weights OHWI), "
                   f"{loop} (K in {unit} pairs), {sums_t} accumulation, "
                   "im2col gathered on the fly; group on grid z",
                   f"GEMM per group: M={m_size} N={n_size} K={k_size * 2}",
                   *([f"shortcut sums: K's first {shortcut.second * 2} from input "
                      f"{2 + shortcut.input} every {params['shortcut']['strides']} pixels, "
                      "summed apart"]
                     if shortcut else []),
                   *([gemm_epilogue.staged_comment(dtype, stored, staged)] if staged else []),
                   *epilogue_summary(params),
                   *([gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")] if wgmma else [])],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)], [stored],
                            launch_bounds=(tile.threads, tile.resident), halves=True),
                  body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m_size, n_size, cv.groups)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA conv: grid {grid} is too large")
    shared = gemm_wgmma.kernel_shared(gemm, k_size, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared)


def _title(params: dict, cv: _Conv, dtype: str) -> str:
    return (f"conv {cv.nd}-d x{list(params['in_shapes'][0])} w{list(params['in_shapes'][1])} -> "
            f"{list(params['out_shapes'][0])} strides={cv.strides} pads={cv.pads} "
            f"dilations={cv.dilations} groups={cv.groups} bias={int(cv.has_bias)} {dtype}")


def _tensor_core(params: dict) -> bool:
    """FP16/BF16 input, weights, bias and output of one type (NCHW or NHWC): tensor cores."""
    dtypes = {*params["in_dtypes"], params["out_dtypes"][0]}
    return (len(dtypes) == 1 and dtypes <= set(gemm_mma.HALF_TYPES)
            and params.get("layout", "NCHW") in ("NCHW", "NHWC"))


def tactics(params: dict, arch: str | None = None, sms: int = SM_COUNT) -> list[dict]:
    """The GEMM tactics worth timing for this step (none for the direct tactic); `arch`: the
    build's target (sm_90 adds Hopper's wgmma tiles for NHWC convs over 8k channels); `sms`:
    the multiprocessors the cost models fill."""
    if conv_sums.is_sums(params):
        return _with_persistent(params, conv_sums.tactics(params, sms))
    if params.get("shortcut") is not None:
        return _shortcut_tactics(params, _Conv(params), arch, sms)
    narrow = gemm_mma.byte_operands(params)
    if narrow:
        try:
            cv = _byte_conv(params)
        except UnsupportedError:
            return []
        _, _, a_op, b_op = _mma_operands(cv)
        sizes = (cv.positions, cv.mg, cv.k_total, cv.groups)
        hopper = gemm_wgmma.targets(arch)
        found = gemm_mma.byte_candidates(narrow, hopper, gemm_mma.candidates(
            *sizes, split_k=False, sms=sms,
            wgmma=hopper and gemm_wgmma.usable(a_op, b_op, narrow),
            tma=hopper and _tma_operands(cv) is not None))
        if hopper and _im2col_operands(cv, narrow) is not None:
            found += gemm_tma.twins(found)  # as FP16's below: timed after the rest
            found += gemm_tma.paired(found, cv.k_total)
        return _with_persistent(params, found)
    tensor_core = _tensor_core(params)
    if params["out_dtypes"][0] not in ("float32", "float64") and not tensor_core or \
            params.get("layout", "NCHW") not in ("NCHW", "NHWC", "NC4HW4"):
        return []
    cv = _Conv(params)
    if cv.mg < DIRECT_BELOW:
        return []
    if cv.packed_w:
        return []
    m, n = (cv.positions, cv.mg) if cv.nhwc else (cv.mg, cv.positions)
    if tensor_core:
        _, _, a_op, b_op = _mma_operands(cv)
        hopper = gemm_wgmma.targets(arch)
        dtype = params["out_dtypes"][0]
        found = gemm_mma.candidates(m, n, cv.k_total, cv.groups, sms=sms,
                                    wgmma=hopper and gemm_wgmma.usable(a_op, b_op, dtype),
                                    tma=hopper and _tma_operands(cv) is not None)
        if hopper and _im2col_operands(cv, dtype) is not None:
            # timed after the rest (the cost model's choice stays the cp.async loop): each
            # wgmma tile's twin reading the input through an im2col map (and a one-warpgroup
            # twin's with two k-tiles a stage)
            found += gemm_tma.twins(found)
            found += gemm_tma.paired(found, cv.k_total)
        return found
    fp32 = candidates(m, n, cv.k_total, cv.groups, params, sms=sms)
    if _tf32_wgmma(params, cv, arch):
        return gemm_wgmma.tf32_candidates(fp32, m, n, cv.k_total, cv.groups, sms=sms)
    return fp32


# the persistent forms an INT8 conv of short K also times (`gemm_mma`'s "persist"): each
# short-K tile at the blocks a multiprocessor its registers allow (~150 for the 64x128 and
# 128x64 tiles' persistent loop: 3 of 128 threads; the 64x64's fewer: 4)
PERSISTENT = ((gemm_mma.MmaTile(64, 128, 32, 2, 2, 4), 3),
              (gemm_mma.MmaTile(128, 64, 32, 2, 2, 4), 3),
              (gemm_mma.MmaTile(64, 64, 32, 2, 2, 4), 4))


def _with_persistent(params: dict, found: list[dict]) -> list[dict]:
    """`found` and, for an INT8 step with a staged result, the `PERSISTENT` tactics of the
    mma.sync tiles among them that emit (a static M, K of at most `gemm_mma.PERSIST_K_TILES`
    k-tiles), timed after the rest (the cost model's choice stays first)."""
    if gemm_mma.byte_operands(params) != gemm_mma.INT8:
        return found
    tiles = [gemm_mma.MmaTile(*t["mma"]) for t in found if "mma" in t]
    extra = []
    for tile, blocks in PERSISTENT:
        if tile not in tiles:
            continue
        tactic = {"mma": tile.as_list(), "splits": 1, "persist": blocks}
        try:  # (gemm_mma.mainloop refuses a persistent tactic it cannot take)
            emit("k", {**params, "tactic": tactic})
        except (ValueError, UnsupportedError):
            continue
        extra.append(tactic)
    return found + extra


def _tf32_wgmma(params: dict, cv: _Conv, arch: str | None) -> bool:
    """An FP32 NHWC conv allowed TF32 (`params["tf32"]`) in an sm_90 build, channels in 16-byte
    chunks: Hopper's TF32 wgmma tactics."""
    if not params.get("tf32") or not cv.nhwc or not gemm_wgmma.targets(arch) \
            or {*params["in_dtypes"], params["out_dtypes"][0]} != {"float32"}:
        return False
    _, _, a_op, b_op = _mma_operands(cv)
    return gemm_wgmma.usable(a_op, b_op, "float32")


def emit(name: str, params: dict) -> KernelSpec:
    dtype = params["out_dtypes"][0]
    if conv_sums.is_sums(params):
        return _gemm_bytes(name, params, gemm_mma.INT8)
    if params.get("shortcut") is not None:  # only the TMA loop reads a second A
        if not gemm_tma.is_tma(params.get("tactic")) or not _tensor_core(params) \
                or params.get("layout") != "NHWC":
            raise UnsupportedError(
                f"CUDA conv: a shortcut conv (fuse-shortcut-convs) runs on a TMA tactic, FP16/"
                f"BF16 in NHWC; this one has tactic {params.get('tactic')}, types "
                f"{sorted(set(params['in_dtypes']))}, layout {params.get('layout', 'NCHW')}")
        return _gemm_tma(name, params, _Conv(params), dtype)
    narrow = gemm_mma.byte_operands(params)
    if narrow:
        return _gemm_bytes(name, params, narrow)
    wgmma = "wgmma" in (params.get("tactic") or {})
    if (_tensor_core(params) or wgmma and dtype == "float32") and _Conv(params).mg >= DIRECT_BELOW:
        return _gemm_mma(name, params, _Conv(params), dtype)
    if dtype not in ("float32", "float64", *gemm_mma.HALF_TYPES):
        raise UnsupportedError(f"CUDA conv: element type {dtype} is not supported")
    layout = params.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC", "NC4HW4"):
        raise UnsupportedError(f"CUDA conv: layout {layout} is not supported")
    cv = _Conv(params)
    tactic = params.get("tactic")
    if tactic and (cv.mg < DIRECT_BELOW or cv.packed_w or _chunked_depthwise(params, cv, dtype)):
        raise ValueError(f"tactic {tactic}: this conv runs a direct kernel ({cv.mg} output "
                         f"channel(s) per group{', packed weights' if cv.packed_w else ''}), "
                         "which takes no GEMM tactic")
    if cv.packed_w and dtype == stored_dtype(params) == "float32" and cv.cg == 1 and cv.mg == 1:
        return _direct_packed(name, params, cv)  # float4 stores: an epilogue cast goes direct
    if _chunked_depthwise(params, cv, dtype):
        return _direct_chunks(name, params, cv, dtype)
    if cv.mg < DIRECT_BELOW or cv.packed_w:
        return _direct(name, params, cv, dtype)
    return _gemm(name, params, cv, dtype)
