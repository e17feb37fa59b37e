"""The final kernel-level module -> a plan, in one step: lay out buffers and steps
(`plan_builder.build_plan`, the manifest's typed schema), tune tactics where asked
(`codegen.autotune`), compile the CUDA kernels (`codegen.plan_kernels`), and pack all of it into
one `runtime.manifest_schema.Manifest` (validated as the loader validates it) and the sections.
The autotuner and the CUDA compiler read steps as JSON and return their results (tactics;
launch records, kernels, target) to this packer, which writes them into the schema; nothing
writes into the manifest after it is packed: it is frozen, and `to_json` hands out copies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from ember.compiler.plan_builder import build_plan
from ember.errors import EmberError
from ember.runtime.manifest_schema import CudaLaunch, Kernel, Manifest, Target
from ember.runtime.plan import plan_bytes


@dataclass(frozen=True)
class Packed:
    """A plan before it is serialized: its manifest and its sections."""

    manifest: Manifest
    sections: Mapping[str, bytes]

    def plan_bytes(self) -> bytes:
        return plan_bytes(self.manifest.to_json(), self.sections)


def pack(module: ModuleOp, *, symbols: Mapping[str, tuple[int, int, int]] | None = None,
         profiles: Sequence[Mapping[str, Any]] | None = None, target_arch: str | None = None,
         autotune: bool = False, cpu_fallback: bool = True) -> Packed:
    """The plan of a module at the kernel level. `symbols`, `profiles`: as `build_plan` takes
    them; `target_arch`: compile CUDA kernels for it (None: a CPU-only plan); `autotune`: time
    the tactics on the GPU present first (which must be `target_arch`); `cpu_fallback`: steps
    without a CUDA kernel run on the host rather than fail the build."""
    manifest, sections = build_plan(module, symbols=dict(symbols or {}),
                                    profiles=list(profiles or []))
    if target_arch is None:
        if autotune:
            raise EmberError("autotune needs a target arch to tune for")
        return Packed(_validated(manifest, sections), sections)
    from ember.codegen.plan_kernels import compile_cuda_kernels

    steps = [s.to_json() for s in manifest.steps]
    counts = None
    if autotune:
        from ember.codegen.autotune import autotune as tune

        tuning = tune(manifest.to_json(), target_arch)
        # each tuned step's params["tactic"] (and "tactic_small") become the autotuner's choice
        steps = tuning.apply(steps)
        counts = tuning.stats
    symbols = manifest.symbols or {}
    cuda = compile_cuda_kernels(steps, symbols, target_arch, cpu_fallback=cpu_fallback)
    packed = []
    for step, tuned, launch, fallback in zip(manifest.steps, steps, cuda.launches,
                                             cuda.fallbacks, strict=True):
        packed.append(dataclasses.replace(
            step, params=tuned["params"], device="cpu" if fallback else None,
            fallback=fallback or None,
            cuda=None if launch is None else CudaLaunch.from_json(
                launch, f"step {step.name!r}'s cuda launch", symbols)))
    manifest = dataclasses.replace(
        manifest, target=Target.from_json(cuda.target), steps=tuple(packed), autotune=counts,
        kernels=tuple(Kernel.from_json(k, f"kernel #{i}") for i, k in enumerate(cuda.kernels)))
    sections = {**sections, **cuda.sections}
    return Packed(_validated(manifest, sections), sections)


def _validated(manifest: Manifest, sections: Mapping[str, bytes]) -> Manifest:
    """The manifest as the loader will read it back: every check of `Manifest.from_json`
    (weight buffers inside the weights section, steps' buffers, symbols, kernels)."""
    return Manifest.from_json(manifest.to_json(), weights_bytes=len(sections["weights"]))
