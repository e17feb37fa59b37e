"""dequantize: ONNX DequantizeLinear, y = (x - zero_point) * scale; the scale and zero point per
tensor, per axis or per block, as quantize reads them. One thread per element."""

from __future__ import annotations

import numpy as np

from ember.codegen.scalar_c import c_type
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.quantize import param_index
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    x_shape = list(params["in_shapes"][0])
    in_dtypes = params["in_dtypes"]
    dtype = params["out_dtypes"][0]
    x_t, s_t = in_dtypes[0], in_dtypes[1]
    if x_t not in ("uint8", "int8", "uint16", "int16", "int32"):
        raise UnsupportedError(f"CUDA dequantize: input type {x_t} is not supported")
    if s_t not in ("float32", "float64") or dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA dequantize: {s_t} scale, {dtype} result")
    has_zp = len(in_dtypes) > 2
    n = prod(x_shape)
    itype = index_type(n)
    lines, at, how = param_index(params, x_shape, list(params["in_shapes"][1]), "dequantize",
                                 itype)
    # numpy's types: x as float32, minus the zero point (promoting), times the scale
    sub_t = np.result_type(np.float32, np.dtype(in_dtypes[2])) if has_zp else np.dtype(np.float32)
    mul_t = np.result_type(sub_t, np.dtype(s_t))
    st, mt = c_type(sub_t.name), c_type(mul_t.name)
    dx = f"({st})(float)in0[i]" + (f" - ({st})in2[{at}]" if has_zp else "")
    body = [grid_stride_loop(n, itype), *lines,
            f"        out0[i] = ({c_type(dtype)})(({mt})({dx}) * ({mt})in1[{at}]);",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"dequantize {x_shape} {x_t} -> {dtype}, scale {how}"
                  + (", zero point" if has_zp else ""),
                  ["tactic: one thread per element, grid-stride loop, block 256"],
                  signature(name, in_dtypes, [dtype]), body)
    return KernelSpec(text, grid, block, 0)
