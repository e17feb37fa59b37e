"""Plan steps -> CUDA kernels: emit each step's template, compile them all with NVRTC (in
parallel, cached), and pack CUBIN, PTX and source into plan sections.

Identical kernels (same template and parameters) share one compiled entry: a kernel's name is its
template plus a hash of its source, so every step that needs it points at the same CUBIN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ember.codegen.nvrtc import compile_many, nvrtc_version, parse_arch
from ember.codegen.symbolic import (
    C_PREFIX,
    SymbolicError,
    is_sym,
    symbol_bounds,
    symbolize,
    upper,
)
from ember.codegen.templates import KernelSpec, emitter
from ember.errors import EmberError, UnsupportedError
from ember.runtime.manifest import decode
from ember.runtime.symbolic import params_symbolic

SECTION_ALIGN = 256
_PLACEHOLDER = "__ember_kernel__"


def emit_step(step: dict[str, Any], symbols: Mapping[str, tuple[int, int, int]] | None = None
              ) -> tuple[str, KernelSpec]:
    """The kernel of one plan step: (name, spec). Errors name the step and its ONNX origin.

    A step whose shapes hold symbolic dims (the plan's `symbols`: name -> (min, opt, max)) is
    emitted with those dims as `Sym`s: its kernel takes one `int sz_<symbol>` argument per
    symbol it uses, after its pointers, and the spec's grid holds expressions (JSON, see
    ember.runtime.symbolic) that the runtime evaluates; its scratch is sized for the max."""
    template = step.get("template")
    where = f"step {step.get('name')!r}"
    if step.get("origin"):
        where += f" (ONNX {', '.join(step['origin'])})"
    # params as the runtime reads them (non-finite floats are encoded in the manifest)
    params = decode(step["params"])
    symbolic = params_symbolic(params)
    try:
        if symbolic:
            with symbol_bounds(symbols or {}):
                spec = emitter(str(template))(_PLACEHOLDER, symbolize(params))
                spec = _symbolic_spec(spec)
        else:
            spec = emitter(str(template))(_PLACEHOLDER, params)
    except UnsupportedError as e:
        raise UnsupportedError(f"{where}: template '{template}': {e}") from None
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as e:
        raise EmberError(f"{where}: template '{template}' cannot emit a kernel for its "
                         f"parameters ({type(e).__name__}: {e})") from e
    digest = hashlib.sha256(spec.source.encode()).hexdigest()[:12]
    name = f"{template}_{digest}"
    return name, dataclasses.replace(spec, source=spec.source.replace(_PLACEHOLDER, name))


_SIZE_ARG = re.compile(rf"\b{C_PREFIX}([A-Za-z_][A-Za-z0-9_]*)\b")


def _symbolic_spec(spec: KernelSpec) -> KernelSpec:
    """A template's spec over Syms as the plan stores it: the symbols its source uses become
    trailing `int` arguments; grid entries become expressions; scratch sizes their max."""
    used = sorted(set(_SIZE_ARG.findall(spec.source)))
    text = spec.source
    if used:
        head = f"{_PLACEHOLDER}("
        at = text.index(head)
        close = text.index(")", at)
        extra = ", ".join(f"const int {C_PREFIX}{s}" for s in used)
        text = f"{text[:close]}, {extra}{text[close:]}"
    if is_sym(spec.shared_bytes) or is_sym(spec.block[0]) or is_sym(spec.block[1]):
        raise SymbolicError("its block shape or shared memory depends on a symbolic size")
    grid = tuple(g.to_json() if is_sym(g) else int(g) for g in spec.grid)
    return KernelSpec(text, grid, spec.block, spec.shared_bytes, upper(spec.counter_bytes),
                      upper(spec.workspace_bytes), size_args=tuple(used))


def _pad_to(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def add_cuda_kernels(manifest: dict[str, Any], sections: dict[str, bytes], arch: str, *,
                     cpu_fallback: bool = True) -> None:
    """Compile every step of `manifest` for `arch` (e.g. "sm_90"); adds sections "cubin", "ptx"
    and "cuda_source", the manifest's "kernels" and "target", and each step's "cuda" launch.

    A step whose template has no CUDA implementation runs on the host (`"device": "cpu"`, with
    the reason in `"fallback"`) when `cpu_fallback` is set; otherwise it is an UnsupportedError."""
    major, minor = parse_arch(arch)
    arch_name = f"sm_{major}{minor}"
    emitted: list[tuple[str, KernelSpec] | None] = []
    symbols = {k: tuple(v) for k, v in (manifest.get("symbols") or {}).items()}
    for step in manifest["steps"]:
        try:
            emitted.append(emit_step(step, symbols))
        except UnsupportedError as e:
            if not cpu_fallback:
                raise
            step["device"] = "cpu"
            step["fallback"] = str(e)
            emitted.append(None)
    unique: dict[str, KernelSpec] = {}
    for name, spec in filter(None, emitted):
        unique.setdefault(name, spec)
    names = list(unique)
    compiled = compile_many([(n, unique[n].source) for n in names], arch=arch_name)
    cubin, ptx, src = bytearray(), bytearray(), bytearray()
    kernels = []
    for name, entry in zip(names, compiled, strict=True):
        record: dict[str, Any] = {"name": name}
        for key, buf, data in (("cubin", cubin, entry.cubin), ("ptx", ptx, entry.ptx or b""),
                               ("source", src, unique[name].source.encode())):
            _pad_to(buf, SECTION_ALIGN)
            record[f"{key}_offset"] = len(buf)
            record[f"{key}_size"] = len(data)
            buf.extend(data)
        kernels.append(record)
    for step, entry in zip(manifest["steps"], emitted, strict=True):
        if entry is None:
            continue
        name, spec = entry
        step["cuda"] = {"kernel": name, "grid": list(spec.grid), "block": list(spec.block),
                        "shared": int(spec.shared_bytes)}
        if spec.size_args:  # symbols whose values follow the kernel's pointers
            step["cuda"]["sizes"] = list(spec.size_args)
        if spec.workspace_bytes:
            step["cuda"]["counters"] = int(spec.counter_bytes)
            step["cuda"]["workspace"] = int(spec.workspace_bytes)
    manifest["kernels"] = kernels
    nv_major, nv_minor = nvrtc_version()
    manifest["target"] = {"device": "cuda", "arch": arch_name, "nvrtc": [nv_major, nv_minor]}
    sections["cubin"] = bytes(cubin)
    sections["ptx"] = bytes(ptx)
    sections["cuda_source"] = bytes(src)
