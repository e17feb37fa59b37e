"""matmul: batched numpy matmul with broadcast batch dims and transpose_a/b, the epilogue applied
at the store. FP32/FP64: the register-tiled GEMM main loop of `gemm_tiles`; FP16/BF16: tensor
cores, `gemm_mma`'s mma.sync loop or (sm_90 builds, K-major operands) `gemm_wgmma`'s, FP32
accumulation; FP32 allowed TF32: `gemm_wgmma` too. The tactic is the step's, else the shape's."""

from __future__ import annotations

from collections.abc import Callable

from ember.codegen.scalar_c import c_type, is_half
from ember.codegen.symbolic import is_sym, upper
from ember.codegen.templates import (
    KernelSpec,
    broadcast_strides,
    decompose,
    gemm_epilogue,
    gemm_mma,
    gemm_tma,
    gemm_wgmma,
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
from ember.codegen.templates.gemm_tiles import SM_COUNT, candidates, dense, gemm_for, mainloop
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.common import stored_dtype


def _geometry(params: dict) -> tuple:
    """(m, n, k, a_shape, b_shape, ta, tb, batch dims) with 1-D operands promoted:
    a [K] -> [1, K], b [K] -> [K, 1]; the batch dims broadcast from both operands'."""
    a_shape, b_shape = (list(s) for s in params["in_shapes"][:2])
    ta, tb = bool(params.get("transpose_a", False)), bool(params.get("transpose_b", False))
    if len(a_shape) == 1:
        a_shape, ta = [1, a_shape[0]], False
    if len(b_shape) == 1:
        b_shape, tb = [b_shape[0], 1], False
    m = a_shape[-1] if ta else a_shape[-2]
    k = a_shape[-2] if ta else a_shape[-1]
    n = b_shape[-2] if tb else b_shape[-1]
    nb = max(len(a_shape), len(b_shape)) - 2
    batch = [y if x == 1 else x for x, y in zip([1] * (nb - len(a_shape) + 2) + a_shape[:-2],
                                                [1] * (nb - len(b_shape) + 2) + b_shape[:-2],
                                                strict=True)]
    return m, n, k, a_shape, b_shape, ta, tb, batch


def _byte_geometry(params: dict) -> tuple:
    """An 8-bit matmul's geometry with K counted in byte pairs (16-bit units): the tensor-core
    loop reads both operands K-major, 16 bytes at a time; else UnsupportedError."""
    m, n, k, a_shape, b_shape, ta, tb, batch = _geometry(params)
    if ta or not tb or k % 16:
        raise UnsupportedError(
            f"CUDA matmul: 8-bit operands need both operands K-major (A [M, K], B [N, K]: "
            f"transpose_b) "
            f"and K % 16 == 0 (transpose_a={int(ta)}, transpose_b={int(tb)}, K={k})")
    return m, n, k // 2, a_shape, b_shape, batch


def _byte_operands(m: int, n: int, pairs: int) -> tuple:
    """(A, B) of an 8-bit matmul: byte pairs as 16-bit elements, rows of K / 2 pairs (K % 16 == 0:
    16-byte chunks of 8 pairs)."""
    return (dense("a16", m, pairs, pairs, 1, "a_base", vec8=True),
            dense("b16", n, pairs, pairs, 1, "b_base", vec8=True))


def _tensor_core(params: dict) -> bool:
    """FP16/BF16 operands and result of one type: the tensor-core path."""
    dtypes = {*params["in_dtypes"][:2], params["out_dtypes"][0]}
    return len(dtypes) == 1 and dtypes <= set(gemm_mma.HALF_TYPES)


def _operands(params: dict) -> tuple:
    """(A, B) as the tensor-core loops read them: 16-byte chunks where every row start (and
    batch base) is 16-byte aligned."""
    m, n, k, a_shape, b_shape, ta, tb, batch = _geometry(params)
    a_cols, b_cols = a_shape[-1], b_shape[-1]
    a_bs = ([s * a_shape[-2] * a_cols for s in broadcast_strides(a_shape[:-2], batch)]
            if batch else [])
    b_bs = ([s * b_shape[-2] * b_cols for s in broadcast_strides(b_shape[:-2], batch)]
            if batch else [])

    def aligned(cols, bases, e: int) -> bool:  # rows of e elements start 16-byte aligned
        return cols % e == 0 and all(s_ % e == 0 for s_ in bases)

    a_v = {"vec4": aligned(a_cols, a_bs, 4), "vec8": aligned(a_cols, a_bs, 8)}
    b_v = {"vec4": aligned(b_cols, b_bs, 4), "vec8": aligned(b_cols, b_bs, 8)}
    a_op = (dense("in0", m, k, 1, a_cols, "a_base", **a_v) if ta
            else dense("in0", m, k, a_cols, 1, "a_base", **a_v))
    b_op = (dense("in1", n, k, b_cols, 1, "b_base", **b_v) if tb
            else dense("in1", n, k, 1, b_cols, "b_base", **b_v))
    return a_op, b_op, a_bs, b_bs


def _tma_operands(params: dict, pairs: bool = False
                  ) -> tuple[gemm_tma.TmaOperand, gemm_tma.TmaOperand] | None:
    """(A, B) as the copy engine reads them (`gemm_tma`): A [.., M, K] and B [.., N, K]
    (transpose_b), in 2-byte elements (`pairs`: int8 read as pairs along K); None where it
    cannot."""
    m, n, k, a_shape, b_shape, ta, tb, batch = _geometry(params)
    if ta or not tb or len(a_shape) < 2 or len(b_shape) < 2:
        return None
    half = 2 if pairs else 1
    if pairs and (k % 2 or a_shape[-1] % 2 or b_shape[-1] % 2):
        return None
    a_bs = [s * a_shape[-2] * a_shape[-1] // half
            for s in broadcast_strides(a_shape[:-2], batch)] if batch else []
    b_bs = [s * b_shape[-2] * b_shape[-1] // half
            for s in broadcast_strides(b_shape[:-2], batch)] if batch else []
    a = gemm_tma.operand(0, m, k // half, a_shape[-1] // half, a_bs, batch)
    b = gemm_tma.operand(1, n, k // half, b_shape[-1] // half, b_bs, batch)
    return (a, b) if a is not None and b is not None else None


def tactics(params: dict, arch: str | None = None, sms: int = SM_COUNT) -> list[dict]:
    """The GEMM tactics worth timing for this step (best estimated first); `arch`: the build's
    target (sm_90 adds Hopper's wgmma tiles where both operands are K-major); `sms`: the
    multiprocessors the cost models fill."""
    m, n, k, *_, batch = _geometry(params)
    dtype = params["out_dtypes"][0]
    narrow = gemm_mma.byte_operands(params)
    if narrow:
        m, n, pairs, *_, batch = _byte_geometry(params)
        a_op, b_op = _byte_operands(m, n, pairs)
        sizes = (m, n, pairs, prod(batch))
        hopper = gemm_wgmma.targets(arch)
        wgmma = hopper and gemm_wgmma.usable(a_op, b_op, narrow)
        found = gemm_mma.byte_candidates(narrow, hopper, gemm_mma.candidates(
            *sizes, split_k=False, sms=sms, wgmma=wgmma,
            tma=hopper and _tma_operands(params, pairs=True) is not None))
        split = gemm_wgmma.split_candidate(*sizes, sms) \
            if wgmma and narrow == gemm_mma.INT8 and not any(is_sym(x) for x in sizes) else None
        # INT8's wgmma split-K (int32 partials summed before the drain) is timed, last: a
        # GEMM whose whole tiles leave most multiprocessors idle (BERT's FFN2, K = 3072)
        return found + ([split[1].tactic()] if split is not None else [])
    if _tensor_core(params):
        a_op, b_op, *_ = _operands(params)
        hopper = gemm_wgmma.targets(arch)
        return gemm_mma.candidates(m, n, k, prod(batch), sms=sms,
                                   wgmma=hopper and gemm_wgmma.usable(a_op, b_op, dtype),
                                   tma=hopper and _tma_operands(params) is not None)
    if dtype not in ("float32", "float64"):
        return []
    fp32 = candidates(m, n, k, prod(batch), params, sms=sms)
    if _tf32_wgmma(params, arch):
        return gemm_wgmma.tf32_candidates(fp32, m, n, k, prod(batch), sms=sms)
    return fp32


def _tf32_wgmma(params: dict, arch: str | None) -> bool:
    """An FP32 matmul allowed TF32 (`params["tf32"]`, set by assign-precision) in an sm_90 build
    with both operands K-major in 16-byte chunks: Hopper's TF32 wgmma tactics."""
    if not params.get("tf32") or params["out_dtypes"][0] != "float32" \
            or set(params["in_dtypes"][:2]) != {"float32"} or not gemm_wgmma.targets(arch):
        return False
    a_op, b_op, *_ = _operands(params)
    return gemm_wgmma.usable(a_op, b_op, "float32")


def _batch_offsets(batch: list, a_bs: list, b_bs: list) -> list[str]:
    """Lines giving `b` (the batch index) and each operand's base offset for it."""
    body = []
    if batch:
        body += decompose("b", batch, "bc", "    ")
        a_off = " + ".join(f"(size_t)bc{i} * {s}" for i, s in enumerate(a_bs) if s != 0) or "0"
        b_off = " + ".join(f"(size_t)bc{i} * {s}" for i, s in enumerate(b_bs) if s != 0) or "0"
    else:
        a_off = b_off = "0"
    return body + [f"    const size_t a_base = {a_off};", f"    const size_t b_base = {b_off};"]


def _output_index(m, n) -> Callable[[str, str], str]:
    """The flat output index of C[row, col] of batch `b`."""
    return lambda row, col: f"(size_t)b * {m * n} + (size_t){row} * {n} + {col}"


def _element_store(params: dict, m, n, acc_type: str) -> Callable[[str, str, str, str], list[str]]:
    """The GEMM loops' `store(row, col, value, indent)`: one output through the epilogue, the
    value held in `acc_type`."""
    index = _output_index(m, n)

    def store(row: str, col: str, value: str, indent: str) -> list[str]:
        return [f"{indent}const size_t oi = {index(row, col)};",
                f"{indent}{acc_type} acc = {value};",
                *epilogue_lines(params, "acc", "oi", indent),
                f"{indent}out0[oi] = {epilogue_store(params, 'acc')};"]

    return store


def _emit_mma(name: str, params: dict) -> KernelSpec:
    """Tensor cores: FP16/BF16 (mma.sync or wgmma), or FP32 as TF32 (wgmma, the tactic names
    it)."""
    dtype = params["out_dtypes"][0]
    m, n, k, a_shape, b_shape, ta, tb, batch = _geometry(params)
    nbatch = prod(batch)
    a_op, b_op, a_bs, b_bs = _operands(params)
    if gemm_tma.is_tma(params.get("tactic")):
        return _emit_tma(name, params)
    gemm, wgmma = gemm_wgmma.tensor_core_gemm(params, dtype, a_op, b_op, m, n, k, nbatch)
    tile, splits = gemm.tile, gemm.splits
    body = [f"    const int b = blockIdx.z / {splits};"]
    body += _batch_offsets(batch, a_bs, b_bs)

    store = _element_store(params, m, n, "float")
    # staged 16-byte stores hold the kernel's own type: a fused cast stores element-wise
    staged = stored_dtype(params) == dtype and gemm_epilogue.row_store(
        params, dtype, n, [], _output_index(m, n), lambda col: col)
    m0, n0 = f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}"
    if wgmma:
        body += gemm_wgmma.mainloop(gemm, m, n, k, a_op, b_op, dtype, m0, n0, staged or store)
        helpers = gemm_wgmma.helpers(dtype, tile.bn)
    else:
        body += gemm_mma.mainloop(gemm, m, n, k, a_op, b_op, dtype, m0, n0, staged or store)
        helpers = gemm_mma.helpers(dtype)
    if staged:
        helpers += gemm_epilogue.helpers(dtype)
    sig = signature(name, [*params["in_dtypes"][:2], *epilogue_dtypes(params)],
                    [stored_dtype(params)], launch_bounds=(tile.threads, tile.resident),
                    workspace=splits > 1, halves=True)
    text = source(f"matmul [{nbatch} x ({m} x {k}) @ ({k} x {n})] transpose_a={int(ta)} "
                  f"transpose_b={int(tb)} {dtype}",
                  [f"tactic: tensor cores, {gemm}, FP32 accumulation; batch on grid z",
                   *epilogue_summary(params),
                   *([gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")] if wgmma else [])],
                  sig, body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m, n, nbatch)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA matmul: grid {grid} is too large (M {m}, batch {nbatch})")
    shared = gemm_wgmma.kernel_shared(gemm, k, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared,
                      *gemm.workspace_bytes(m, n, nbatch))


def _emit_tma(name: str, params: dict) -> KernelSpec:
    """FP16/BF16 or INT8 (as 16-bit pairs) operands on wgmma, fed by the copy engine through
    tensor maps (`gemm_tma`): the tactic names it."""
    narrow = gemm_mma.byte_operands(params)  # 8-bit operands, int8 or E4M3
    int8, dtype = narrow is not None, narrow or params["out_dtypes"][0]
    if dtype == "float32":
        raise ValueError("a TMA tactic takes FP16/BF16 or INT8 operands, not FP32 (TF32)")
    gemm = gemm_tma.tma_for(params["tactic"])
    operands = _tma_operands(params, pairs=int8)
    if operands is None:
        raise ValueError("tactic tma needs A [.., M, K] and B [.., N, K] (transpose_b) with "
                         "static sizes, rows a multiple of 16 bytes, batch items back to back "
                         "or one matrix for all")
    a_t, b_t = operands
    m, n, k, *_, batch = _geometry(params)
    nbatch = prod(batch)
    tile = gemm.tile
    stored = stored_dtype(params)
    index = _output_index(m, n)
    if int8:
        store = gemm_epilogue.sums_store(params, index, lambda col: col,
                                         gemm_mma.sums_type(dtype))
        staged = gemm_epilogue.byte_row_store(params, n, [], index, lambda col: col,
                                              tile.shared_bytes() - 1024, tile.bm, tile.bn,
                                              gemm_mma.staged_sums(dtype))
    else:
        store = _element_store(params, m, n, "float")
        staged = stored == dtype and gemm_epilogue.row_store(params, dtype, n, [], index,
                                                               lambda col: col)
    body = ["    const int b = blockIdx.z;"]
    body += gemm_tma.mainloop(gemm, m, n, a_t.row_elems, a_t, b_t, dtype,
                              f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}",
                              staged or store)
    helpers = gemm_tma.helpers(dtype, tile.bn)
    if staged:
        helpers += gemm_epilogue.helpers(stored)
    sig = signature(name, [*params["in_dtypes"][:2], *epilogue_dtypes(params)], [stored],
                    launch_bounds=(tile.threads, tile.resident), halves=True,
                    tensor_maps=gemm_tma.parameters())
    kind, _, _, sums = gemm_mma.BYTE_NAMES.get(dtype, (dtype, "", "", "FP32"))
    text = source(f"matmul [{nbatch} x ({m} x {k}) @ ({k} x {n})] transpose_a=0 transpose_b=1 "
                  + (f"{dtype} -> {sums}" if int8 else dtype),
                  [f"tactic: {kind} tensor cores, {gemm}, "
                   f"{sums} accumulation; batch on grid z",
                   *([gemm_epilogue.staged_comment(dtype, stored, staged)]
                     if int8 and staged else []),
                   *epilogue_summary(params),
                   gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")],
                  sig, body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m, n, nbatch)
    if grid[1] > 65535 or grid[2] > 65535:
        raise UnsupportedError(f"CUDA matmul: grid {grid} is too large (M {m}, batch {nbatch})")
    shared = gemm_wgmma.kernel_shared(gemm, a_t.row_elems, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared,
                      tensor_maps=(a_t.tensor_map(tile.bm), b_t.tensor_map(tile.bn)))


def _emit_bytes(name: str, params: dict) -> KernelSpec:
    """8-bit tensor cores: mma.sync m16n8k32 s8 x s8 -> s32 (exact sums) or e4m3 x e4m3 -> f32
    (or wgmma's k32 forms); the epilogue (the dequantizing multiply, bias, activation:
    fold-qdq's, fused) applied to each sum."""
    dtype = gemm_mma.byte_operands(params)
    kind, ptx, _, sums = gemm_mma.BYTE_NAMES[dtype]
    m, n, pairs, a_shape, b_shape, batch = _byte_geometry(params)
    if gemm_tma.is_tma(params.get("tactic")):
        return _emit_tma(name, params)
    nbatch = prod(batch)
    a_bs = ([s * a_shape[-2] * a_shape[-1] // 2 for s in broadcast_strides(a_shape[:-2], batch)]
            if batch else [])
    b_bs = ([s * b_shape[-2] * b_shape[-1] // 2 for s in broadcast_strides(b_shape[:-2], batch)]
            if batch else [])
    a_op, b_op = _byte_operands(m, n, pairs)
    gemm, wgmma = gemm_wgmma.tensor_core_gemm(params, dtype, a_op, b_op, m, n, pairs,
                                              nbatch, split_k=False)
    tile = gemm.tile
    stored = stored_dtype(params)
    store = gemm_epilogue.sums_store(params, _output_index(m, n), lambda col: col,
                                     gemm_mma.sums_type(dtype))
    # 8-bit results: the sums staged through shared memory, 16-byte stores
    staged = gemm_epilogue.byte_row_store(params, n, [], _output_index(m, n), lambda col: col,
                                          tile.shared_bytes() - (1024 if wgmma else 0),
                                          tile.bm, tile.bn, gemm_mma.staged_sums(dtype),
                                          band=None if wgmma else tile.bm // tile.wm)

    body = [f"    const int b = blockIdx.z / {gemm.splits};",
            "    const unsigned short* a16 = (const unsigned short*)in0;",
            "    const unsigned short* b16 = (const unsigned short*)in1;"]
    body += _batch_offsets(batch, a_bs, b_bs)
    m0, n0 = f"blockIdx.y * {tile.bm}", f"blockIdx.x * {tile.bn}"
    if wgmma:
        body += gemm_wgmma.mainloop(gemm, m, n, pairs, a_op, b_op, dtype, m0, n0,
                                    staged or store)
        helpers, loop = gemm_wgmma.helpers(dtype, tile.bn), f"{gemm}, k32 {ptx}"
    else:
        body += gemm_mma.mainloop(gemm, m, n, pairs, a_op, b_op, dtype, m0, n0,
                                  staged or store)
        helpers, loop = gemm_mma.helpers(dtype), f"mma.sync m16n8k32 {ptx}, {tile}"
    if staged:
        helpers += gemm_epilogue.helpers(stored)
    sig = signature(name, [*params["in_dtypes"][:2], *epilogue_dtypes(params)], [stored],
                    launch_bounds=(tile.threads, tile.resident),
                    workspace=gemm.splits > 1, halves=True)
    k = pairs * 2
    text = source(f"matmul [{nbatch} x ({m} x {k}) @ ({k} x {n})] transpose_a=0 transpose_b=1 "
                  f"{dtype} -> {sums}",
                  [f"tactic: {kind} tensor cores, {loop}, {sums} accumulation; batch on grid z",
                   *([gemm_epilogue.staged_comment(dtype, stored, staged)] if staged else []),
                   *epilogue_summary(params),
                   *([gemm_wgmma.ARCH_SPECIFIC.removeprefix("// ")] if wgmma else [])],
                  sig, body, prelude=uses_mod(params), helpers=helpers)
    grid = gemm.grid(m, n, nbatch)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA matmul: grid {grid} is too large (M {m}, batch {nbatch})")
    shared = gemm_wgmma.kernel_shared(gemm, pairs, dtype, staged or store)
    return KernelSpec(text, grid, (tile.threads, 1, 1), shared,
                      *gemm.workspace_bytes(m, n, nbatch))


def emit(name: str, params: dict) -> KernelSpec:
    dtype = params["out_dtypes"][0]
    if gemm_mma.byte_operands(params):
        return _emit_bytes(name, params)
    if _tensor_core(params) or dtype == "float32" and "wgmma" in (params.get("tactic") or {}):
        return _emit_mma(name, params)
    if dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA matmul: element type {dtype} is not supported")
    m, n, k, a_shape, b_shape, ta, tb, batch = _geometry(params)
    a_rows, a_cols = a_shape[-2], a_shape[-1]
    b_rows, b_cols = b_shape[-2], b_shape[-1]
    nbatch = prod(batch)
    a_mat, b_mat = a_rows * a_cols, b_rows * b_cols
    a_bs = [s * a_mat for s in broadcast_strides(a_shape[:-2], batch)] if batch else []
    b_bs = [s * b_mat for s in broadcast_strides(b_shape[:-2], batch)] if batch else []
    gemm = gemm_for(params, m, n, k, nbatch)
    tile = gemm.tile
    # element (m, k) of A and (n, k) of B, each from its batch's base
    # float4 loads where every row start (and batch base) is 16-byte aligned
    a_vec = a_cols % 4 == 0 and all(s_ % 4 == 0 for s_ in a_bs)
    b_vec = b_cols % 4 == 0 and all(s_ % 4 == 0 for s_ in b_bs)
    a_op = (dense("in0", m, k, 1, a_cols, "a_base", a_vec) if ta
            else dense("in0", m, k, a_cols, 1, "a_base", a_vec))
    b_op = (dense("in1", n, k, b_cols, 1, "b_base", b_vec) if tb
            else dense("in1", n, k, 1, b_cols, "b_base", b_vec))
    body = [f"    const int b = blockIdx.z / {gemm.splits};"]
    body += _batch_offsets(batch, a_bs, b_bs)

    store = _element_store(params, m, n, c_type(dtype))
    body += mainloop(gemm, m, n, k, a_op, b_op, dtype, f"blockIdx.y * {tile.bm}",
                     f"blockIdx.x * {tile.bn}", store)
    text = source(f"matmul [{nbatch} x ({m} x {k}) @ ({k} x {n})] transpose_a={int(ta)} "
                  f"transpose_b={int(tb)} {dtype}",
                  [f"tactic: register-tiled GEMM, {gemm}, double-buffered shared memory; "
                   "batch on grid z", *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"][:2], *epilogue_dtypes(params)],
                            [stored_dtype(params)],
                            launch_bounds=(tile.threads, 512 // tile.threads),
                            workspace=gemm.splits > 1, halves=is_half(stored_dtype(params))),
                  body, prelude=uses_mod(params))
    grid = gemm.grid(m, n, nbatch)
    if upper(grid[1]) > 65535 or upper(grid[2]) > 65535:
        raise UnsupportedError(f"CUDA matmul: grid {grid} is too large (M {m}, batch {nbatch})")
    return KernelSpec(text, grid, (tile.threads, 1, 1), 0,
                      *gemm.workspace_bytes(m, n, nbatch, 8 if dtype == "float64" else 4))
