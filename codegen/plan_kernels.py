"""Plan steps -> CUDA kernels: emit each step's template (`emit_cuda.emit_step`, the function
the emit-cuda pass shows), compile them all with NVRTC (in parallel, cached), and pack CUBIN, PTX
and source into plan sections.

Identical kernels (same template and parameters) share one compiled entry: a kernel's name is its
template plus a hash of its source, so every step that needs it points at the same CUBIN.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember.codegen.emit_cuda import emit_step
from ember.codegen.nvrtc import compile_many, nvrtc_version
from ember.codegen.templates import KernelSpec
from ember.errors import EmberError, UnsupportedError
from ember.runtime.arch import parse_arch
from ember.runtime.symbolic import dim_symbols, params_symbolic

SECTION_ALIGN = 256


def _pad_to(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


@dataclass
class CudaKernels:
    """What `compile_cuda_kernels` built, for the packer (`compiler/pack.py`) to put into the
    plan: per step its launch record (None for a host step) and host-fallback reason (None for
    a kernel step), the kernel records, the target, and the "cubin", "ptx" and "cuda_source"
    sections."""

    launches: list[dict[str, Any] | None]
    fallbacks: list[str | None]
    kernels: list[dict[str, Any]]
    target: dict[str, Any]
    sections: dict[str, bytes]


def compile_cuda_kernels(steps: list[Mapping[str, Any]],
                         symbols: Mapping[str, tuple[int, int, int]], arch: str, *,
                         cpu_fallback: bool = True) -> CudaKernels:
    """Compile every step (manifest step JSON) for `arch` (e.g. "sm_90"): the sections "cubin",
    "ptx" and "cuda_source", the manifest's "kernels" and "target", and each step's "cuda"
    launch. Reads the steps, writes nothing into them.

    A step whose template has no CUDA implementation runs on the host (`"device": "cpu"`, with
    the reason in `"fallback"`) when `cpu_fallback` is set; otherwise it is an UnsupportedError."""
    major, minor = parse_arch(arch)
    arch_name = f"sm_{major}{minor}"
    emitted: list[tuple[str, KernelSpec] | None] = []
    fallbacks: list[str | None] = []
    variants: list[list[tuple[dict[str, int], str, KernelSpec]]] = []
    symbols = {k: tuple(v) for k, v in symbols.items()}
    for step in steps:
        try:
            emitted.append(emit_step(step, symbols))
            fallbacks.append(None)
        except UnsupportedError as e:
            if not cpu_fallback:
                raise
            fallbacks.append(str(e))
            emitted.append(None)
        variants.append(_small_variants(step, symbols, emitted[-1]))
    unique: dict[str, KernelSpec] = {}
    for name, spec in filter(None, emitted):
        unique.setdefault(name, spec)
    for name, spec in (v[1:] for vs in variants for v in vs):
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
    launches: list[dict[str, Any] | None] = []
    for entry, small in zip(emitted, variants, strict=True):
        if entry is None:
            launches.append(None)
            continue
        launch = _launch_record(*entry)
        if small:
            launch["variants"] = [{"when": when, **_launch_record(name, spec)}
                                  for when, name, spec in small]
        launches.append(launch)
    nv_major, nv_minor = nvrtc_version()
    return CudaKernels(
        launches, fallbacks, kernels,
        {"device": "cuda", "arch": arch_name, "nvrtc": [nv_major, nv_minor]},
        {"cubin": bytes(cubin), "ptx": bytes(ptx), "cuda_source": bytes(src)})


def _launch_record(name: str, spec: KernelSpec) -> dict[str, Any]:
    record: dict[str, Any] = {"kernel": name, "grid": list(spec.grid),
                              "block": list(spec.block), "shared": int(spec.shared_bytes)}
    if spec.size_args:  # symbols whose values follow the kernel's pointers
        record["sizes"] = list(spec.size_args)
    if spec.workspace_bytes:
        record["counters"] = int(spec.counter_bytes)
        record["workspace"] = int(spec.workspace_bytes)
    return record


# templates whose tactic (tile, split-K) depends on the shape: a symbolic step also gets a
# kernel tuned for the profile's small shapes
VARIANT_TEMPLATES = ("conv", "matmul")


def small_subsets(params: Mapping[str, Any], symbols: Mapping[str, tuple[int, int, int]]
                  ) -> list[tuple[str, ...]]:
    """The sets of a step's symbols that get a kernel tuned for their min, most specific first:
    every non-empty subset of the symbols its shapes use whose min is well below opt (one set of
    all of them where there are more than two)."""
    shapes = [*params.get("in_shapes", []), *params.get("out_shapes", [])]
    used = sorted({p for shape in shapes if shape for d in shape for p in dim_symbols(d)
                   if p in symbols})
    varying = [s for s in used if symbols[s][0] < symbols[s][1]
               and small_threshold(symbols[s]) >= symbols[s][0]]
    if len(varying) > 2:
        return [tuple(varying)]
    return [c for r in range(len(varying), 0, -1) for c in itertools.combinations(varying, r)]


def small_threshold(bounds: tuple[int, int, int]) -> int:
    """A symbol counts as small up to ⌊√(min · opt)⌋."""
    return int((bounds[0] * bounds[1]) ** 0.5)


def _small_variants(step: dict[str, Any], symbols: Mapping[str, tuple[int, int, int]],
                    primary: tuple[str, KernelSpec] | None
                    ) -> list[tuple[dict[str, int], str, KernelSpec]]:
    """A conv/matmul step with symbolic dims is tuned for the profile's opt shapes; where some
    of its symbols may go well below opt, more kernels are tuned with those at their min (the
    autotuner's `tactic_small[<symbols>]`, else the cost model's choice there). Each runs while
    its symbols are at most ⌊√(min · opt)⌋, the most specific first (the step's "variants",
    picked per binding). Kernels equal to one already listed are left out."""
    if primary is None or step.get("template") not in VARIANT_TEMPLATES \
            or not params_symbolic(step["params"]):
        return []
    tuned = step["params"].get("tactic_small") or {}
    params = {k: v for k, v in step["params"].items() if k not in ("tactic", "tactic_small")}
    out: list[tuple[dict[str, int], str, KernelSpec]] = []
    seen = {primary[0]}
    for subset in small_subsets(step["params"], symbols):
        small = {k: (lo, lo if k in subset else opt, hi) for k, (lo, opt, hi) in symbols.items()}
        tactic = tuned.get(",".join(subset)) if isinstance(tuned, Mapping) else None
        try:
            name, spec = emit_step(dict(step, params={**params, **(
                {"tactic": tactic} if tactic else {})}), small)
        except (UnsupportedError, EmberError):
            continue
        if name not in seen:
            seen.add(name)
            out.append(({z: small_threshold(symbols[z]) for z in subset}, name, spec))
    return out
