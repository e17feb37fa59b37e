"""Kernel templates: one module per template, each `emit(name, params) -> KernelSpec`.

A template turns one plan step's parameters (the nn op's properties plus the static shapes and
dtypes of its operands and results) into readable CUDA C for one tactic. Every kernel's signature
is `extern "C" __global__ void <name>(const T* in0, ..., T* out0, ...)`: pointers only, every
static size a compile-time constant. Where a plan's dims are symbolic, shapes arrive as `Sym`s
(codegen/symbolic.py): they print as C expressions over `const int sz_<symbol>` arguments that
`signature` declares after the pointers (one per symbol of the params being emitted, see
`size_arguments`), and a template's grid may hold them.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ember.codegen import quantize_c
from ember.codegen.scalar_c import PRELUDE, c_type, half_prelude, is_float8, storage_type
from ember.codegen.symbolic import C_PREFIX, cdiv, is_sym, smin, upper
from ember.dialects.kernel_templates import descriptor
from ember.errors import UnsupportedError


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: its CUDA C source and launch configuration."""

    source: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int = 0
    # zeroed device scratch the kernel takes as its last two arguments (split-K): its own
    # `counters` (bytes), and `ws` (bytes) that steps share; 0: neither argument
    counter_bytes: int = 0
    workspace_bytes: int = 0
    # symbols whose values the kernel takes as trailing `int sz_<name>` arguments (a plan with
    # dynamic shapes): those `signature` declared, recorded by the emitter (codegen/emit_cuda.py)
    size_args: tuple[str, ...] = ()
    # tensor maps (ember.runtime.tensor_maps.TensorMap) the kernel takes after its pointers and
    # workspace, before its sizes: a TMA-fed main loop's operands
    tensor_maps: tuple[Any, ...] = ()


# the templates with a CUDA kernel (a plan step's "template"); each one's module in this package
# is its descriptor's `emitter` (ember.dialects.kernel_templates)
TEMPLATES: tuple[str, ...] = (
    "elementwise", "matmul", "conv", "pool", "reduce", "softmax", "batch_norm", "layer_norm",
    "group_norm", "lrn", "transpose", "concat", "slice", "gather", "pad", "expand", "tile",
    "arg_reduce", "conv_transpose", "resize", "cumsum", "trilu", "gather_elements", "einsum",
    "quantize", "dequantize", "range", "fill", "attention", "reformat", "shape_of", "bitcast",
    "plugin", "grid_sample", "rnn", "lstm", "max_pool_indices", "max_unpool",
    "tensor_scatter", "col2im", "topk", "gather_nd", "roi_align",
    "deform_conv", "attention_chain",
)


def template_module(template: str) -> ModuleType:
    """The module of a template (`emit`, and `tactics` where it has choices)."""
    if template not in TEMPLATES:
        raise UnsupportedError(f"CUDA codegen: no kernel template for '{template}' "
                               f"(templates: {', '.join(TEMPLATES)})")
    return importlib.import_module(descriptor(template).emitter)


def emitter(template: str) -> Callable[[str, dict], KernelSpec]:
    """The `emit` function of a template; UnsupportedError when there is none."""
    return template_module(template).emit


# -- helpers shared by the templates ------------------------------------------------------------

MAX_GRID_X = 2**31 - 1
GRID_STRIDE_BLOCKS = 65536  # grid-stride kernels launch at most this many blocks


def prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out = out * v
    return out


def strides_of(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc = acc * d
    return out[::-1]


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Strides of `shape` read at `out_shape`'s coordinates under numpy broadcasting (0 where a
    dim is broadcast)."""
    rank = len(out_shape)
    padded = [1] * (rank - len(shape)) + list(shape)
    st = strides_of(padded)
    return [0 if padded[i] == 1 and out_shape[i] != 1 else st[i] for i in range(rank)]


def index_type(*sizes: int) -> str:
    """`int` while every index fits (at the profile's max shapes), else `long long`."""
    return "int" if max((upper(s) for s in sizes), default=0) < 2**31 - 1 else "long long"


def decompose(var: str, shape: Sequence[int], prefix: str, indent: str = "    ",
              itype: str = "int") -> list[str]:
    """C lines splitting flat index `var` (row-major over `shape`) into `<prefix>0..` coords."""
    lines = [f"{indent}{itype} {prefix}rest = {var};"]
    for k in range(len(shape) - 1, -1, -1):
        if k == 0:
            lines.append(f"{indent}{itype} {prefix}{k} = {prefix}rest;")
        else:
            lines.append(f"{indent}{itype} {prefix}{k} = {prefix}rest % {shape[k]};")
            lines.append(f"{indent}{prefix}rest /= {shape[k]};")
    return lines


def linear(prefix: str, strides: Sequence[int], skip_zero: bool = True) -> str:
    """`c0 * s0 + c1 * s1 + ...` over coords `<prefix>k` (zero strides left out)."""
    terms = [f"{prefix}{k} * {s}" if s != 1 else f"{prefix}{k}"
             for k, s in enumerate(strides) if not (skip_zero and s == 0)]
    return " + ".join(terms) if terms else "0"


# the symbols of the params being emitted, and the signatures declared for them (see below)
_SIZE_ARGS: contextvars.ContextVar[tuple[tuple[str, ...], list[tuple[str, ...]]] | None] = \
    contextvars.ContextVar("ember_size_args", default=None)


@contextlib.contextmanager
def size_arguments(symbols: Sequence[str]) -> Iterator[list[tuple[str, ...]]]:
    """While a template emits from params over the Syms `symbols`, `signature` declares one
    `const int sz_<symbol>` argument per symbol (in this order, after the pointers); yields
    the list of what each `signature` call declared, for the emitter to check and record."""
    declared: list[tuple[str, ...]] = []
    token = _SIZE_ARGS.set((tuple(symbols), declared))
    try:
        yield declared
    finally:
        _SIZE_ARGS.reset(token)


def size_parameters() -> list[str]:
    """`const int sz_<symbol>` for each symbolic size of the params being emitted (see
    `size_arguments`): the last parameters of every kernel signature. A template that writes
    its own signature appends these."""
    sizes = _SIZE_ARGS.get()
    if sizes is None:
        return []
    sizes[1].append(sizes[0])
    return [f"const int {C_PREFIX}{s}" for s in sizes[0]]


def signature(name: str, in_dtypes: Sequence[str], out_dtypes: Sequence[str],
              launch_bounds: tuple[int, int] | None = None, workspace: bool = False,
              halves: bool = False, tensor_maps: Sequence[str] = ()) -> str:
    """`extern "C" __global__ void name(inputs, outputs[, counters, ws][, maps][, sizes])`:
    the kernel's pointers, the `tensor_maps` parameters given (`gemm_tma.parameters`), then
    an `int` per symbolic size of the params (`size_arguments`).
    `halves`: the template handles float16/bfloat16 (pointers of their `storage_type`);
    without it a half operand is an UnsupportedError (`c_type`), so the step runs on the host."""
    ptr = storage_type if halves else c_type
    args = [f"const {ptr(t)}* __restrict__ in{i}" for i, t in enumerate(in_dtypes)]
    args += [f"{ptr(t)}* __restrict__ out{i}" for i, t in enumerate(out_dtypes)]
    if workspace:
        args += ["unsigned int* __restrict__ counters", "unsigned char* __restrict__ ws"]
    args += list(tensor_maps)
    args += size_parameters()
    bounds = f"__launch_bounds__({launch_bounds[0]}, {launch_bounds[1]}) " if launch_bounds else ""
    return f'extern "C" __global__ void {bounds}{name}({", ".join(args)})'


# Programmatic dependent launch (sm_90+, `griddepcontrol`): every kernel first waits until the
# kernel before it in the stream has finished and its writes are visible, then lets the next
# one's blocks launch, so that they take free multiprocessors and run up to their own wait while
# this one runs. The runtime launches a kernel programmatically (before the one ahead has
# finished) only where its launch record says "pdl" (`plan_kernels.launch_record`: kernels whose
# text holds the wait, for an sm_90+ target); elsewhere the instructions are no-ops, and for
# older targets the preprocessor drops them.
PDL_WAIT = "griddepcontrol.wait;"
# a kernel body's first line, or (a template placing it itself: `source`) the line after what a
# kernel may do before the kernel ahead has finished: no global memory read or written
PDL_SYNC = "ember_pdl_sync();"
PDL_PRELUDE = f"""\
// programmatic dependent launch (sm_90+): wait for the kernel before this one, then let the
// next one launch
__device__ __forceinline__ void ember_pdl_sync() {{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("{PDL_WAIT}" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}}"""


def source(tactic: str, header_lines: Sequence[str], sig: str, body: Sequence[str],
           prelude: bool = False, helpers: str = "") -> str:
    """A kernel's full text: the tactic comment, helpers, the signature and body (and the half
    types' definitions where the kernel uses them); body lines marked `quantize_c.HOISTED`
    (a scalar argument's reciprocal) move to the body's top, once each, after the wait for
    the kernel before (`PDL_SYNC`), which every kernel body starts with — unless the body
    holds that line itself (once, indented), after a prologue that touches no global memory
    (the TMA kernels' barriers: under programmatic launch it overlaps the kernel ahead)."""
    head = [f"// {line}" for line in [tactic, *header_lines]]
    parts = ["\n".join(head), ""]
    waits = [i for i, line in enumerate(body) if line.strip() == PDL_SYNC]
    if len(waits) > 1:
        raise ValueError(f"a kernel body waits for the kernel before once, not {len(waits)} times")
    prologue = list(body[:waits[0] + 1]) if waits else [f"    {PDL_SYNC}"]
    if any(line.endswith((quantize_c.HOISTED, quantize_c.FILE_SCOPE)) for line in prologue):
        raise ValueError("hoisted or file-scope lines before the wait for the kernel before")
    body = prologue + quantize_c.hoist(body[waits[0] + 1:] if waits else body)
    tables, body = quantize_c.file_scope(body)  # lookup tables go before the kernel
    helpers = "\n".join([helpers, *tables]) if tables else helpers
    text = "\n".join([helpers, sig, *body])
    for needed in (half_prelude(text), quantize_c.prelude(text)):
        if needed:
            parts += [needed]
    if prelude:
        parts += [PRELUDE]
    if helpers:
        parts += [helpers]
    parts += [PDL_PRELUDE, sig + " {", *body, "}", ""]
    return "\n".join(parts)


def grid_1d(n: int, block: int = 256) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if is_sym(n):  # a run-time size is at least 1
        return (smin(cdiv(n, block), GRID_STRIDE_BLOCKS), 1, 1), (block, 1, 1)
    blocks = max(1, min(-(-n // block), GRID_STRIDE_BLOCKS))
    return (blocks, 1, 1), (block, 1, 1)


def grid_blocks(n: int, limit: int = 65535) -> int:
    """Blocks of a loop striding over `n` rows, one block per row up to `limit`."""
    return smin(n, limit) if is_sym(n) else max(1, min(n, limit))


def grid_stride_loop(n: int, itype: str) -> str:
    return (f"    for ({itype} i = ({itype})blockIdx.x * blockDim.x + threadIdx.x; i < {n}; "
            f"i += ({itype})blockDim.x * gridDim.x) {{")


def close_loops(body: list[str], indent: str, count: int) -> str:
    """Append the closing braces of `count` nested loops opened at 4 spaces each, the innermost
    body at `indent`; returns the indent outside them."""
    for _ in range(count):
        indent = indent[:-4]
        body.append(f"{indent}}}")
    return indent


def block_size_for(n: int, lo: int = 32, hi: int = 256) -> int:
    """The power-of-two block size for a cooperative reduction over `n` values."""
    b, n = lo, upper(n)
    while b < hi and b < n:
        b *= 2
    return b


VECTOR_BYTES = 16  # the widest load / store one thread issues
VEC_HELPER = """\
// N elements of T as one aligned load / store
template <typename T, int N> struct alignas(sizeof(T) * N) ember_vec { T v[N]; };
"""
_ITEM_BYTES = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4,
               "float16": 2, "bfloat16": 2, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1,
               "bool": 1}


def item_bytes(dtype: str) -> int:
    """An element's bytes in memory (0 for a type the vector paths do not take)."""
    return 1 if is_float8(dtype) else _ITEM_BYTES.get(dtype, 0)


def vector_width(sizes: Sequence[int], aligned: Sequence[int], most: int = 16) -> int:
    """Elements a thread moves as one `ember_vec` each of types of `sizes` bytes: the most (up
    to `most`) whose widest vector fits `VECTOR_BYTES` and that divide every one of `aligned`
    (a row's length, offsets, strides: so each vector starts aligned), halving from there; 0
    where that is under 2 or a size is unknown (0)."""
    if not sizes or min(sizes) == 0:
        return 0
    width = min(most, VECTOR_BYTES // max(sizes))
    while width >= 2 and any(a % width for a in aligned):
        width //= 2
    return width if width >= 2 else 0


BLOCK_REDUCE = """\
// tree reduction over a power-of-two block; every thread gets the result
struct SumOp { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };
struct ProdOp { template <typename T> __device__ T operator()(T a, T b) const { return a * b; } };
struct MaxOp {  // NaN wins, as numpy's maximum
    template <typename T>
    __device__ T operator()(T a, T b) const { return a >= b || a != a ? a : b; }
};
struct MinOp {
    template <typename T>
    __device__ T operator()(T a, T b) const { return a <= b || a != a ? a : b; }
};
template <typename T, typename Op>
__device__ T block_reduce(T v, T* smem, Op op) {
    int tid = threadIdx.x;
    smem[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) smem[tid] = op(smem[tid], smem[tid + s]);
        __syncthreads();
    }
    T r = smem[0];
    __syncthreads();
    return r;
}
"""
