"""The final kernel-level module -> a plan, in one step: lay out buffers and steps
(`plan_builder.build_plan`, the manifest's typed schema), compile the CUDA kernels that emit-cuda
recorded in the IR (`codegen.plan_kernels`), and pack all of it into one
`runtime.manifest_schema.Manifest` (validated as the loader validates it) and the sections.

Everything the plan says is read from the IR: the profile's symbols (`ember.symbols`), each
kernel op's tactic (select-tactics), its arena offsets (plan-memory), its CUDA kernels or host
fallback (emit-cuda) and the autotuner's counts (`ember.autotune`); the "explain" section holds
why each step is what it is, as the passes recorded it (`inspect_reasons`). Nothing writes into the
manifest after it is packed: it is frozen, and `to_json` hands out copies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from ember.compiler import inspect_reasons as explain
from ember.compiler.plan_builder import build_plan
from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import CudaOp, ElementwiseOp, LaunchOp
from ember.dialects.origin import origin_of
from ember.dialects.symbol_ranges import symbol_ranges
from ember.errors import CompileError, EmberError, UnsupportedError
from ember.runtime.manifest_schema import COMPATIBLE, CudaLaunch, Kernel, Manifest, Target
from ember.runtime.plan import plan_bytes


@dataclass(frozen=True)
class Packed:
    """A plan before it is serialized: its manifest and its sections."""

    manifest: Manifest
    sections: Mapping[str, bytes]

    def plan_bytes(self) -> bytes:
        return plan_bytes(self.manifest.to_json(), self.sections)


def pack(module: ModuleOp, *, profiles: Sequence[Mapping[str, Any]] | None = None,
         target_arch: str | None = None, cpu_fallback: bool = True,
         weight_refs: dict[int, str] | None = None, compatible: bool = False) -> Packed:
    """The plan of a module at the kernel level. `profiles`: the optimization profiles, input
    name -> (min, opt, max) shapes, as the engine reports them (the symbols' ranges are the
    module's); `target_arch`: compile the CUDA kernels that emit-cuda recorded for it (None: a
    CPU-only plan); `cpu_fallback`: steps without a CUDA kernel (emit-cuda's `cuda_fallback`)
    run on the host rather than fail the build; `weight_refs`: filled with each weight
    buffer's store name; `compatible`: the plan's target is "ampere+" (hardware
    compatibility: its sm_80 code runs on any GPU from sm_80 up)."""
    manifest, sections = build_plan(module, symbols=symbol_ranges(module),
                                    profiles=list(profiles or []), weight_refs=weight_refs)
    # why each step is what it is (`ember inspect --explain`): data the runtime does not read
    reasons = explain.section_bytes(module, [op for op, _ in _kernel_ops(module)])
    if reasons is not None:
        sections = {**sections, explain.SECTION: reasons}
    if target_arch is None:
        return Packed(_validated(manifest, sections), sections)
    from ember.codegen.emit_cuda import DEFAULT_PLACED, PLACED_ATTR, spec_of
    from ember.codegen.plan_kernels import compile_cuda_kernels

    kernels, fallbacks = [], []
    for op, cudas in _kernel_ops(module):
        placed = op.attributes.get(PLACED_ATTR)
        if placed is not None:  # set_device_type(layer, CPU): the host runs it, by request
            text = attribute_value(placed)
            how = "default_device_type" if text.startswith(DEFAULT_PLACED) else \
                "set_device_type"
            nodes = text.removeprefix(DEFAULT_PLACED).removeprefix("cpu: ")
            fallbacks.append(f"placed on the CPU ({how}{': ' + nodes if nodes else ''})")
            kernels.append(None)
            continue
        reason = op.attributes.get("cuda_fallback")
        if reason is not None:
            if not cpu_fallback:
                raise UnsupportedError(attribute_value(reason))
            fallbacks.append(attribute_value(reason))
            kernels.append(None)
            continue
        if not cudas:
            raise EmberError(f"{_where(op, len(kernels))} has no CUDA kernel: run emit-cuda "
                             f"before packing a plan for {target_arch}")
        fallbacks.append(None)
        kernels.append([(attribute_value(c.when) if c.when is not None else None,
                         c.kernel.data, spec_of(c)) for c in cudas])
    try:
        cuda = compile_cuda_kernels(kernels, target_arch)
    except CompileError as e:  # a plugin's kernel: name the plugin (the user's code)
        from ember.compiler.plugins import plugin_compile_error

        raise plugin_compile_error(e, _plugin_kernels(module)) from None
    packed = []
    symbols = manifest.symbols or {}
    for step, launch, fallback in zip(manifest.steps, cuda.launches, fallbacks, strict=True):
        packed.append(dataclasses.replace(
            step, device="cpu" if fallback else None, fallback=fallback or None,
            cuda=None if launch is None else CudaLaunch.from_json(
                launch, f"step {step.name!r}'s cuda launch", symbols)))
    counts = module.attributes.get("ember.autotune")
    target = Target.from_json({**cuda.target, **({"compatibility": COMPATIBLE} if compatible
                                                 else {})})
    manifest = dataclasses.replace(
        manifest, target=target, steps=tuple(packed),
        autotune=None if counts is None else attribute_value(counts),
        kernels=tuple(Kernel.from_json(k, f"kernel #{i}") for i, k in enumerate(cuda.kernels)))
    sections = {**sections, **cuda.sections}
    return Packed(_validated(manifest, sections), sections)


def _kernel_ops(module: ModuleOp) -> list[tuple[LaunchOp | ElementwiseOp, list[CudaOp]]]:
    """Each kernel op (the plan's steps, in order) with the `kernel.cuda` ops that emit-cuda
    placed after it (its own kernel first, then its variants)."""
    out: list[tuple[LaunchOp | ElementwiseOp, list[CudaOp]]] = []
    index: dict[LaunchOp | ElementwiseOp, list[CudaOp]] = {}
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.block.ops:
            if isinstance(op, LaunchOp | ElementwiseOp):
                out.append((op, index.setdefault(op, [])))
            elif isinstance(op, CudaOp):
                owner = op.kernels[0].owner if op.kernels else None
                if owner not in index:
                    raise EmberError(f"kernel.cuda '{op.kernel.data}' does not follow the "
                                     "kernel op whose results it names: rerun emit-cuda")
                index[owner].append(op)
    return out


def _plugin_kernels(module: ModuleOp) -> dict[str, str]:
    """Kernel name -> the plugin it runs (`plugin 'ns::name' (version v)`)."""
    from ember.runtime.plugins import label

    return {c.kernel.data: label(op.params.data["plugin"].data, op.params.data["version"].data)
            for op, cudas in _kernel_ops(module) for c in cudas
            if isinstance(op, LaunchOp) and op.template.data == "plugin"}


def _where(op: LaunchOp | ElementwiseOp, index: int) -> str:
    template = op.template.data if isinstance(op, LaunchOp) else "elementwise"
    origin = origin_of(op)
    return f"step '{template}_{index}'" + (f" (ONNX {', '.join(origin)})" if origin else "")


def _validated(manifest: Manifest, sections: Mapping[str, bytes]) -> Manifest:
    """The manifest as the loader will read it back: every check of `Manifest.from_json`
    (weight buffers inside the weights section, steps' buffers, symbols, kernels)."""
    return Manifest.from_json(manifest.to_json(), weights_bytes=len(sections["weights"]))
