"""Emitted kernels -> plan sections: compile every kernel that emit-cuda recorded (NVRTC, in
parallel, cached) and pack CUBIN, PTX and source into the "cubin", "ptx" and "cuda_source"
sections, with each step's launch record.

Identical kernels (same template and parameters) share one compiled entry: a kernel's name is its
template plus a hash of its source, so every step that needs it points at the same CUBIN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ember.codegen import progress
from ember.codegen.nvrtc import compile_many, nvrtc_version
from ember.codegen.templates import PDL_WAIT, KernelSpec
from ember.runtime.arch import parse_arch

SECTION_ALIGN = 256

# one kernel of a step: (when, name, spec); `when` (symbol -> the largest value it runs for) is
# None for the step's own kernel and set for its small-shape variants, which follow it
StepKernel = tuple[dict[str, int] | None, str, KernelSpec]


def _pad_to(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


@dataclass
class CudaKernels:
    """What `compile_cuda_kernels` built, for the packer (`compiler/pack.py`) to put into the
    plan: per step its launch record (None for a host step), the kernel records, the target,
    and the "cubin", "ptx" and "cuda_source" sections."""

    launches: list[dict[str, Any] | None]
    kernels: list[dict[str, Any]]
    target: dict[str, Any]
    sections: dict[str, bytes]


def compile_cuda_kernels(steps: Sequence[Sequence[StepKernel] | None], arch: str
                         ) -> CudaKernels:
    """Compile each step's kernels (its own first, then its variants; None: a host step) for
    `arch` (e.g. "sm_90"): the sections, the kernel records (the steps' own kernels first, then
    the variants', each once), the target and each step's launch record."""
    major, minor = parse_arch(arch)
    arch_name = f"sm_{major}{minor}"
    unique: dict[str, KernelSpec] = {}
    for kernels in filter(None, steps):
        unique.setdefault(kernels[0][1], kernels[0][2])
    for kernels in filter(None, steps):
        for _, name, spec in kernels[1:]:
            unique.setdefault(name, spec)
    names = list(unique)
    sources = [(n, unique[n].source) for n in names]
    with progress.phase("Compiling kernels", len({source for _, source in sources})) as done:
        compiled = compile_many(sources, arch=arch_name, on_done=lambda name: done.step())
    cubin, ptx, src = bytearray(), bytearray(), bytearray()
    records = []
    for name, entry in zip(names, compiled, strict=True):
        record: dict[str, Any] = {"name": name}
        for key, buf, data in (("cubin", cubin, entry.cubin), ("ptx", ptx, entry.ptx or b""),
                               ("source", src, unique[name].source.encode())):
            _pad_to(buf, SECTION_ALIGN)
            record[f"{key}_offset"] = len(buf)
            record[f"{key}_size"] = len(data)
            buf.extend(data)
        records.append(record)
    launches: list[dict[str, Any] | None] = []
    for kernels in steps:
        if not kernels:
            launches.append(None)
            continue
        launch = launch_record(kernels[0][1], kernels[0][2], major)
        if len(kernels) > 1:
            launch["variants"] = [{"when": when, **launch_record(name, spec, major)}
                                  for when, name, spec in kernels[1:]]
        launches.append(launch)
    nv_major, nv_minor = nvrtc_version()
    return CudaKernels(
        launches, records, {"device": "cuda", "arch": arch_name, "nvrtc": [nv_major, nv_minor]},
        {"cubin": bytes(cubin), "ptx": bytes(ptx), "cuda_source": bytes(src)})


def launch_record(name: str, spec: KernelSpec, arch_major: int = 0) -> dict[str, Any]:
    """A kernel's launch as the manifest stores it; "pdl" where the kernel, built for an sm_90+
    `arch_major`, waits for the kernel before it (`templates.PDL_PRELUDE`), so the runtime may
    launch it programmatically."""
    record: dict[str, Any] = {"kernel": name, "grid": list(spec.grid),
                              "block": list(spec.block), "shared": int(spec.shared_bytes)}
    if spec.size_args:  # symbols whose values follow the kernel's pointers
        record["sizes"] = list(spec.size_args)
    if spec.tensor_maps:  # encoded by the runtime over the operands' addresses
        record["tmaps"] = [t.to_json() for t in spec.tensor_maps]
    if spec.workspace_bytes:
        record["counters"] = int(spec.counter_bytes)
        record["workspace"] = int(spec.workspace_bytes)
    if arch_major >= 9 and PDL_WAIT in spec.source:
        record["pdl"] = True
    return record
