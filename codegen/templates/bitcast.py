"""bitcast: each element's bytes copied as an unsigned integer of the same width (ONNX
BitCast: the bits reinterpreted, no conversion); one thread per element, grid-stride loop."""

from __future__ import annotations

import numpy as np

from ember.codegen.scalar_c import dtype_name
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    size_parameters,
    source,
)

_WORD = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}


def emit(name: str, params: dict) -> KernelSpec:
    have, want = params["in_dtypes"][0], params["out_dtypes"][0]
    word = _WORD[np.dtype(dtype_name(want)).itemsize]
    n = prod(list(params["out_shapes"][0]))
    itype = index_type(n)
    sig = (f'extern "C" __global__ void {name}(const {word}* __restrict__ in0, '
           f"{word}* __restrict__ out0{''.join(', ' + a for a in size_parameters())})")
    body = [grid_stride_loop(n, itype), "        out0[i] = in0[i];", "    }"]
    grid, block = grid_1d(n)
    text = source(f"bitcast {have} -> {want}: {n} elements",
                  ["tactic: one thread per element copying its bits, grid-stride loop"],
                  sig, body)
    return KernelSpec(text, grid, block, 0)
