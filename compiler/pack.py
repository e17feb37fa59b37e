"""The final kernel-level module -> a plan, in one step: lay out buffers and steps
(`plan_builder.build_plan`), tune tactics where asked (`codegen.autotune`), compile the CUDA
kernels (`codegen.plan_kernels`), and pack all of it into the manifest's typed schema
(`runtime.manifest_schema.Manifest`, validated as the loader validates it) and the sections.
The autotuner and the CUDA compiler return their results (tactics; launch records, kernels,
target) to this packer and write into no manifest; nothing writes into the manifest after it is
packed: it is frozen, and `to_json` hands out copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import ModuleOp

from ember.compiler.plan_builder import build_plan
from ember.errors import EmberError
from ember.runtime.manifest_schema import Manifest
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
    draft, sections = build_plan(module, target={"device": "any"}, symbols=dict(symbols or {}),
                                 profiles=list(profiles or []))
    if target_arch is None:
        if autotune:
            raise EmberError("autotune needs a target arch to tune for")
        return Packed(Manifest.from_json(draft, weights_bytes=len(sections["weights"])),
                      sections)
    from ember.codegen.plan_kernels import compile_cuda_kernels

    tuned: dict[str, Any] = {}
    if autotune:
        from ember.codegen.autotune import autotune as tune

        tuning = tune(draft, target_arch)
        # each tuned step's params["tactic"] (and "tactic_small") become the autotuner's choice
        draft = {**draft, "steps": tuning.apply(draft["steps"])}
        tuned = {"autotune": tuning.stats}
    cuda = compile_cuda_kernels(draft["steps"], draft.get("symbols") or {}, target_arch,
                                cpu_fallback=cpu_fallback)
    steps = []
    for step, launch, fallback in zip(draft["steps"], cuda.launches, cuda.fallbacks,
                                      strict=True):
        extra: dict[str, Any] = {"device": "cpu", "fallback": fallback} if fallback else {}
        if launch is not None:
            extra["cuda"] = launch
        steps.append({**step, **extra})
    manifest = Manifest.from_json({**draft, "target": cuda.target, "steps": steps, **tuned,
                                   "kernels": cuda.kernels},
                                  weights_bytes=len(sections["weights"]))
    return Packed(manifest, {**sections, **cuda.sections})
