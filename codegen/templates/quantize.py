"""quantize: ONNX QuantizeLinear, y = saturate(round_half_even(x / scale) + zero_point) in the
result's integer type; the scale and zero point per tensor, per axis (1-D along `axis`) or per
block (`block_size` along `axis`). One thread per element."""

from __future__ import annotations

import numpy as np

from ember.codegen.scalar_c import c_type
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    KernelSpec,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    linear,
    prod,
    signature,
    source,
    strides_of,
)
from ember.errors import UnsupportedError


def param_index(params: dict, x_shape: list[int], p_shape: list[int], op: str,
                itype: str) -> tuple[list[str], str, str]:
    """(C lines, index expression, description) of the scale / zero point read for element i of
    x, as `cpu_kernels.quant._expand` broadcasts them."""
    if prod(p_shape) == 1:
        return [], "0", "per tensor"
    rank = len(x_shape)
    axis = int(params.get("axis", 1)) % rank
    block = int(params.get("block_size") or 0)
    inner = prod(x_shape[axis + 1:])
    if not block:
        count = prod(p_shape)
        if is_sym(count) and count != x_shape[axis]:
            # a run-time count is 1 (per tensor: index 0) or the axis's length (per axis); the
            # second `%` covers both
            return [], f"((i / {inner}) % {x_shape[axis]}) % {count}", f"per axis {axis} or tensor"
        if prod(p_shape) != x_shape[axis]:
            raise UnsupportedError(f"CUDA {op}: a scale of shape {p_shape} for axis {axis} of "
                                   f"{x_shape}")
        return [], f"(i / {inner}) % {x_shape[axis]}", f"per axis {axis}"
    if len(p_shape) != rank:
        raise UnsupportedError(f"CUDA {op}: blocked scale of shape {p_shape} for {x_shape}")
    lines = decompose("i", x_shape, "c", "        ", itype)
    lines.append(f"        c{axis} /= {block};")
    return lines, linear("c", strides_of(p_shape)), f"per block of {block} along axis {axis}"


def emit(name: str, params: dict) -> KernelSpec:
    x_shape = list(params["in_shapes"][0])
    in_dtypes = params["in_dtypes"]
    dtype = params["out_dtypes"][0]
    x_t, s_t = in_dtypes[0], in_dtypes[1]
    if x_t not in ("float32", "float64") or s_t not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA quantize: {x_t} input with {s_t} scale")
    if dtype not in ("uint8", "int8", "uint16", "int16", "int32"):
        raise UnsupportedError(f"CUDA quantize: result type {dtype} is not supported")
    has_zp = len(in_dtypes) > 2
    n = prod(x_shape)
    itype = index_type(n)
    lines, at, how = param_index(params, x_shape, list(params["in_shapes"][1]), "quantize", itype)
    # x / scale in numpy's result type of the two; rint is round half to even
    div_t = np.result_type(np.dtype(x_t), np.dtype(s_t)).name
    ct = c_type(div_t)
    rint = "rintf" if div_t == "float32" else "rint"
    info = np.iinfo(np.dtype(dtype))
    body = [grid_stride_loop(n, itype), *lines,
            f"        const long long q = (long long){rint}(({ct})in0[i] / ({ct})in1[{at}])"
            + (f" + (long long)in2[{at}];" if has_zp else ";"),
            f"        out0[i] = ({c_type(dtype)})(q < {int(info.min)}LL ? {int(info.min)}LL : "
            f"q > {int(info.max)}LL ? {int(info.max)}LL : q);",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"quantize {x_shape} {x_t} -> {dtype}, scale {how}"
                  + (", zero point" if has_zp else ""),
                  ["tactic: one thread per element, grid-stride loop, block 256; round half to "
                   "even (rint), saturate to the result type"],
                  signature(name, in_dtypes, [dtype]), body)
    return KernelSpec(text, grid, block, 0)
