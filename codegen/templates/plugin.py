"""plugin: the CUDA kernel a registered plugin gives for one instance (`ember.plugin.aot_impl`).

The plugin's function sees the shapes, dtypes and attribute values and returns its kernel's
name, CUDA C source and launch geometry; the kernel is renamed to the step's kernel name and
compiled by NVRTC like ember's own. Its signature is ember's: the inputs' pointers, the outputs'
pointers, then (where the plan's dims are symbolic) one `int` per symbol of its shapes, sorted.
A plugin registered without a kernel runs on the host (its numpy reference), and says so.
"""

from __future__ import annotations

import re

from ember.codegen.templates import KernelSpec, size_parameters
from ember.errors import EmberError, PluginError, UnsupportedError
from ember.runtime import plugins


def emit(name: str, params: dict) -> KernelSpec:
    qualified, version = params["plugin"], params["version"]
    found = plugins.definition(qualified, version)
    if found is None or found.describe is None:
        raise PluginError(f"{plugins.label(qualified, version)} is not registered in this "
                          "process: register it (ember.plugin.register and aot_impl) before "
                          "building or emitting its kernel")
    if found.emit is None:
        raise UnsupportedError(f"{found.label} has no CUDA kernel (ember.plugin.aot_impl): "
                               "it runs on the host with its numpy reference")
    attrs = plugins.attribute_values(params)
    try:
        kernel, source, grid, block, shared = found.emit(
            params["in_shapes"], params["in_dtypes"], params["out_shapes"],
            params["out_dtypes"], attrs)
    except EmberError:
        raise
    except Exception as e:
        raise PluginError(f"{found.label}: its aot_impl failed: {type(e).__name__}: {e}") from e
    size_parameters()  # the symbols' values follow the kernel's pointers (see the docstring)
    pattern = (r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s+)?'
               rf"{re.escape(kernel)}\s*\(")
    if not re.search(pattern, source):
        raise PluginError(f"{found.label}: its CUDA source defines no kernel "
                          f"'extern \"C\" __global__ void {kernel}(...)'")
    renamed = re.sub(rf"\b{re.escape(kernel)}\b", name, source)
    header = (f"// {found.label}: kernel '{kernel}'\n"
              f"// attributes: {params.get('attrs') or {}}\n")
    if not renamed.endswith("\n"):
        renamed += "\n"
    return KernelSpec(header + renamed, tuple(grid), tuple(block), int(shared))
