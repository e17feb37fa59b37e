"""group_norm: normalize each group of channels over its channels and spatial dims, then scale and
shift per channel. Each (batch, group) row as layer_norm's rows: one warp per row of at most
1024 values, else one thread block per row; two-pass mean / variance."""

from __future__ import annotations

from ember.codegen.templates import KernelSpec, prod
from ember.codegen.templates.layer_norm import normalized_rows, param, store_line


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    groups = int(params["groups"])
    channels, spatial = shape[1], prod(shape[2:])
    per_group = channels // groups
    rows, length = shape[0] * groups, per_group * spatial
    affine = [f"            const int c = (row % {groups}) * {per_group} + j / {spatial};",
              store_line(f"(XJ - mean) * inv * {param(params, 1, 'c')} + {param(params, 2, 'c')}",
                         params["out_dtypes"][0])]
    return normalized_rows(name, params, rows, length, f"group_norm groups={groups}", affine)
