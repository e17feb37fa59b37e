"""shape_of: the dims start:end of the input's shape as int64 values. Only a shape with symbolic
dims is left for a kernel (static ones fold to constants): one thread writes each dim, symbolic
ones from the kernel's size arguments. The input is not read."""

from __future__ import annotations

from ember.codegen.templates import KernelSpec, signature, source


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dims = shape[slice(params.get("start", 0), params.get("end"))]
    body = ["    if (blockIdx.x != 0 || threadIdx.x != 0) return;"]
    body += [f"    out0[{k}] = (long long)({d});" for k, d in enumerate(dims)]
    text = source(f"shape_of dims {params.get('start', 0)}:{params.get('end')} of {shape}",
                  ["tactic: one thread writes the dims (symbolic ones are the kernel's size "
                   "arguments)"],
                  signature(name, params["in_dtypes"][:1], ["int64"], halves=True), body)
    return KernelSpec(text, (1, 1, 1), (32, 1, 1), 0)
