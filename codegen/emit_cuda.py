"""emit-cuda: each kernel op's CUDA C, emitted by its template and shown in the IR.

`emit_step` turns one plan step (template + params, see codegen/kernel_step.py) into a named
kernel; the plan (codegen/plan_kernels.py), the autotuner and this pass all emit through it.
After the pass every `kernel.launch` / `kernel.elementwise` is followed by a `kernel.cuda` op
holding its kernel's name, launch geometry and source (the op's own, rerunning the pass replaces
them), or, where its template has no CUDA kernel for it, carries `cuda_fallback = "<reason>"`
(the plan runs that step on the host). A kernel with an ONNX node of `host` (a comma list: the
build's CPU placements, `config.set_device_type(layer, DeviceType.CPU)`; `*`: every node but
those of `gpu`, `default_device_type = CPU`) gets no kernel and carries `placed = "cpu: <node>"`:
the plan runs it on the host, as a fallback. A placed kernel the CPU executor cannot run (a
plugin with no numpy reference registered) is an error naming it, or with `gpu_fallback`
(BuilderFlag.GPU_FALLBACK) gets its kernel and `gpu_fallback = "<why>"`. A conv/matmul
with symbolic sizes also gets kernels for the profile's small shapes (each a `kernel.cuda` with
`when`: symbol -> the largest value it runs for), most specific first, with the autotuner's
`small_tactics` where it timed them. The symbols' ranges are the module's profile
(`ember.symbols`) unless the `symbols` option gives them. The packer compiles these kernels as
they stand (compiler/pack.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.ir import Attribute
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.codegen.kernel_step import json_value, kernel_step
from ember.codegen.symbolic import C_PREFIX, SymbolicError, is_sym, symbol_bounds, symbolize, upper
from ember.codegen.templates import KernelSpec, emitter, size_arguments
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import CudaOp, ElementwiseOp, LaunchOp
from ember.dialects.kernel_templates import TEMPLATES
from ember.dialects.origin import origin_of
from ember.dialects.symbol_ranges import symbol_ranges
from ember.dialects.tensor_types import shape_of
from ember.errors import EmberError, PassError, UnsupportedError
from ember.runtime import plugins
from ember.runtime.manifest import decode
from ember.runtime.symbolic import dim_symbols, expr_from_text, expr_text, params_symbolic
from ember.runtime.tensor_maps import TensorMap

_PLACEHOLDER = "__ember_kernel__"


def emit_step(step: dict[str, Any], symbols: Mapping[str, tuple[int, int, int]] | None = None
              ) -> tuple[str, KernelSpec]:
    """The kernel of one plan step: (name, spec). Errors name the step and its ONNX origin.

    A step whose shapes hold symbolic dims (the plan's `symbols`: name -> (min, opt, max)) is
    emitted with those dims as `Sym`s: its kernel takes one `int sz_<symbol>` argument per
    symbol of its shapes, after its pointers (declared by `templates.signature`), and the
    spec's grid holds expressions (JSON, see ember.runtime.symbolic) that the runtime
    evaluates; its scratch is sized for the max."""
    template = step.get("template")
    where = f"step {step.get('name')!r}"
    if step.get("origin"):
        where += f" (ONNX {', '.join(step['origin'])})"
    # params as the runtime reads them (non-finite floats are encoded in the manifest)
    params = decode(step["params"])
    try:
        if params_symbolic(params):
            sizes = shape_symbols(params)
            with symbol_bounds(symbols or {}), size_arguments(sizes) as declared:
                spec = emitter(str(template))(_PLACEHOLDER, symbolize(params))
                spec = _symbolic_spec(spec, sizes, declared)
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


def shape_symbols(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The symbols of a step's shapes (in_shapes, out_shapes, an epilogue's in_shapes), sorted:
    its kernel's size arguments, in order."""
    shapes = [*params.get("in_shapes", []), *params.get("out_shapes", [])]
    epilogue = params.get("epilogue")
    if isinstance(epilogue, Mapping):
        shapes += epilogue.get("in_shapes", [])
    return tuple(sorted({s for shape in shapes if shape for d in shape if isinstance(d, str)
                         for s in dim_symbols(d)}))


def _symbolic_spec(spec: KernelSpec, sizes: tuple[str, ...],
                   declared: list[tuple[str, ...]]) -> KernelSpec:
    """A template's spec over Syms as the plan stores it: its size arguments recorded, grid
    entries as expressions, scratch sized for the max."""
    if not declared:
        missing = [s for s in sizes if re.search(rf"\b{C_PREFIX}{s}\b", spec.source)]
        if missing:
            raise EmberError(f"the kernel uses {[C_PREFIX + s for s in missing]} but its "
                             "signature does not declare them (build it with "
                             "codegen.templates.signature)")
    if is_sym(spec.shared_bytes) or is_sym(spec.block[0]) or is_sym(spec.block[1]):
        raise SymbolicError("its block shape or shared memory depends on a symbolic size")
    grid = tuple(g.to_json() if is_sym(g) else int(g) for g in spec.grid)
    if spec.tensor_maps:
        raise SymbolicError("its tensor maps are encoded at static shapes")
    return KernelSpec(spec.source, grid, spec.block, spec.shared_bytes, upper(spec.counter_bytes),
                      upper(spec.workspace_bytes), size_args=sizes if declared else ())


def parse_symbol_ranges(text: str) -> dict[str, tuple[int, int, int]]:
    """`"N=1:8:64,M=2:2:4"` -> {"N": (1, 8, 64), "M": (2, 2, 4)} (min:opt:max)."""
    out: dict[str, tuple[int, int, int]] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"([A-Za-z_]\w*)=(\d+):(\d+):(\d+)", item)
        if m is None or not 1 <= int(m[2]) <= int(m[3]) <= int(m[4]):
            raise PassError(f"emit-cuda: symbols: '{item}' is not NAME=MIN:OPT:MAX with "
                            "1 <= MIN <= OPT <= MAX")
        out[m[1]] = (int(m[2]), int(m[3]), int(m[4]))
    return out


PLACED_ATTR = "placed"  # a kernel op the build placed on the host: "cpu: <its nodes>"
# ... or placed there by default_device_type: "cpu (default): <its nodes>"
DEFAULT_PLACED = "cpu (default): "
FALLBACK_ATTR = "gpu_fallback"  # a placed kernel the host cannot run, on the GPU: "<why>"


@dataclass(frozen=True)
class EmitCuda(ModulePass):
    """`symbols`: each symbolic size's range, "N=1:8:64,..." (min:opt:max), as a build's
    optimization profile gives it; needed where a kernel's shapes are symbolic."""

    name = "emit-cuda"
    symbols: str = ""
    host: str = ""
    """ONNX node names whose kernels run on the host (comma-separated); "*": every kernel but
    those whose nodes are all in `gpu`"""
    gpu: str = ""
    """with host="*": ONNX node names kept on the GPU (comma-separated)"""
    gpu_fallback: bool = False
    """a kernel placed on the host that the CPU executor cannot run gets its CUDA kernel
    (else it is an error)"""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        bounds = parse_symbol_ranges(self.symbols) if self.symbols else symbol_ranges(module)
        host = {n for n in self.host.split(",") if n}
        gpu = {n for n in self.gpu.split(",") if n}
        for op in [op for op in module.walk() if isinstance(op, CudaOp)]:
            Rewriter.erase_op(op)
        for fn in module.ops:
            if not isinstance(fn, func.FuncOp):
                continue
            kernels = [op for op in fn.body.block.ops if isinstance(op, LaunchOp | ElementwiseOp)]
            for index, op in enumerate(kernels):
                op.attributes.pop(PLACED_ATTR, None)
                op.attributes.pop(FALLBACK_ATTR, None)
                placed = _placement(op, host, gpu)
                if placed is not None:
                    cannot = host_cannot_run(op)
                    if cannot is None:  # the host runs it: no kernel
                        op.attributes.pop("cuda_fallback", None)
                        op.attributes[PLACED_ATTR] = StringAttr(placed)
                        continue
                    if not self.gpu_fallback:
                        raise PassError(
                            f"emit-cuda: {op.name} (kernel {index}{_origin(op)}) is placed on "
                            f"the CPU, which cannot run it: {cannot}. Register the reference, "
                            "place the layer on the GPU, or set BuilderFlag.GPU_FALLBACK to "
                            "run it on the GPU")
                    _emit(op, index, bounds)
                    if "cuda_fallback" in op.attributes:
                        raise PassError(
                            f"emit-cuda: {op.name} (kernel {index}{_origin(op)}) runs nowhere: "
                            f"the CPU cannot run it ({cannot}) and the GPU cannot either "
                            f"({attribute_value(op.attributes['cuda_fallback'])})")
                    op.attributes[FALLBACK_ATTR] = StringAttr(
                        f"placed on the CPU, which cannot run it ({cannot}): on the GPU "
                        "(GPU_FALLBACK)")
                    continue
                _emit(op, index, bounds)


def _placement(op: LaunchOp | ElementwiseOp, host: set[str], gpu: set[str]) -> str | None:
    """The `placed` text of a kernel the host runs by request, or None where it runs on the
    GPU: one of its nodes is placed on the CPU (a fused kernel runs there if any is), or, with
    host "*", not all of them are kept on the GPU (a kernel of no node, e.g. a reformat,
    follows the default)."""
    origin = origin_of(op)
    if "*" in host:
        nodes = [n for n in origin if n not in gpu]
        return DEFAULT_PLACED + ", ".join(nodes) if nodes or not origin else None
    nodes = [n for n in origin if n in host]
    return f"cpu: {', '.join(nodes)}" if nodes else None


def host_cannot_run(op: LaunchOp | ElementwiseOp) -> str | None:
    """Why the CPU executor cannot run `op`, or None where it can. Every kernel template has
    a numpy reference (runtime/cpu_kernels) but a plugin's, which the process that loads the
    plan registers (a plan carries no Python): a build whose own process has none registered
    takes it that there is none (`ember.plugin.impl`)."""
    if not isinstance(op, LaunchOp) or op.template.data != "plugin":
        return None
    qualified, version = (attribute_value(op.params.data[k]) for k in ("plugin", "version"))
    found = plugins.definition(qualified, version)
    if found is not None and found.reference is not None:
        return None
    return (f"{plugins.label(qualified, version)} has no numpy reference registered "
            "(ember.plugin.impl)")


def _emit(op: LaunchOp | ElementwiseOp, index: int,
          bounds: Mapping[str, tuple[int, int, int]]) -> None:
    unbounded = sorted({s for v in (*op.operands, *op.results) for d in shape_of(v) or ()
                        if isinstance(d, str) for s in dim_symbols(d) if s not in bounds})
    if unbounded:
        raise PassError(f"emit-cuda: {op.name} (kernel {index}{_origin(op)}) has symbolic "
                        f"sizes {unbounded} that the module's profile (ember.symbols) does not "
                        f"bound: give their ranges, as in "
                        f"emit-cuda{{symbols=\"{unbounded[0]}=MIN:OPT:MAX\"}}")
    template, params = kernel_step(op, bounds, codegen=True)
    step = {"name": f"{template}_{index}", "template": template, "params": json_value(params),
            "origin": origin_of(op)}
    op.attributes.pop("cuda_fallback", None)
    if params.get("dynamic"):  # the kernels take parameters at build time
        op.attributes["cuda_fallback"] = StringAttr(
            f"run-time parameters ({', '.join(params['dynamic'])}) are read on the host")
        return
    try:
        name, spec = emit_step(step, bounds)
    except UnsupportedError as e:
        op.attributes["cuda_fallback"] = StringAttr(str(e))
        return
    at = op
    for when, kernel, emitted in [(None, name, spec), *small_variants(step, bounds, name)]:
        cuda = CudaOp.create(operands=list(op.results),
                             properties=_cuda_props(kernel, emitted, when))
        Rewriter.insert_op(cuda, InsertPoint.after(at))
        at = cuda


def _cuda_props(name: str, spec: KernelSpec, when: dict[str, int] | None
                ) -> dict[str, Attribute]:
    props: dict[str, Attribute] = {
        "kernel": StringAttr(name),
        "grid": ArrayAttr([IntAttr(g) if isinstance(g, int) else StringAttr(expr_text(g))
                           for g in spec.grid]),
        "block": ArrayAttr([IntAttr(int(b)) for b in spec.block]),
        "shared": IntAttr(int(spec.shared_bytes)),
        "source": StringAttr(spec.source)}
    if spec.workspace_bytes:
        props["scratch"] = ArrayAttr([IntAttr(int(spec.counter_bytes)),
                                      IntAttr(int(spec.workspace_bytes))])
    if spec.size_args:
        props["sizes"] = ArrayAttr([StringAttr(s) for s in spec.size_args])
    if spec.tensor_maps:
        props["tmaps"] = ArrayAttr([to_attribute(t.to_json()) for t in spec.tensor_maps])
    if when is not None:
        props["when"] = DictionaryAttr({k: IntegerAttr(v, i64) for k, v in when.items()})
    return props


def spec_of(cuda: CudaOp) -> KernelSpec:
    """The kernel a `kernel.cuda` op records, as its template emitted it (grid expressions as
    JSON, see ember.runtime.symbolic)."""
    scratch = [s.data for s in cuda.scratch] if cuda.scratch is not None else [0, 0]
    return KernelSpec(
        cuda.source.data,
        tuple(g.data if isinstance(g, IntAttr) else expr_from_text(g.data) for g in cuda.grid),
        tuple(b.data for b in cuda.block), cuda.shared.data, scratch[0], scratch[1],
        tuple(z.data for z in cuda.sizes) if cuda.sizes is not None else (),
        tuple(TensorMap.from_json(attribute_value(t), f"tensor map #{i} of {cuda.kernel.data}")
              for i, t in enumerate(cuda.tmaps or ())))


# templates whose tactic (tile, split-K) depends on the shape: a symbolic step also gets a
# kernel tuned for the profile's small shapes
VARIANT_TEMPLATES = tuple(name for name, d in TEMPLATES.items() if d.tactics)


def small_subsets(params: Mapping[str, Any], symbols: Mapping[str, tuple[int, int, int]]
                  ) -> list[tuple[str, ...]]:
    """The sets of a step's symbols that get a kernel tuned for their min, most specific first:
    every non-empty subset of the symbols its shapes use whose min is well below opt (one set of
    all of them where there are more than two); not the data-dependent ones."""
    shapes = [*params.get("in_shapes", []), *params.get("out_shapes", [])]
    used = sorted({p for shape in shapes if shape for d in shape for p in dim_symbols(d)
                   if p in symbols})
    varying = [s for s in used if 0 < symbols[s][0] < symbols[s][1]  # (a data symbol's is 0)
               and small_threshold(symbols[s]) >= symbols[s][0]]
    if len(varying) > 2:
        return [tuple(varying)]
    return [c for r in range(len(varying), 0, -1) for c in itertools.combinations(varying, r)]


def small_threshold(bounds: tuple[int, int, int]) -> int:
    """A symbol counts as small up to ⌊√(min · opt)⌋."""
    return int((bounds[0] * bounds[1]) ** 0.5)


def small_variants(step: dict[str, Any], symbols: Mapping[str, tuple[int, int, int]],
                   primary: str) -> list[tuple[dict[str, int], str, KernelSpec]]:
    """A conv/matmul step with symbolic dims is tuned for the profile's opt shapes; where some
    of its symbols may go well below opt, more kernels are tuned with those at their min (the
    autotuner's `tactic_small[<symbols>]`, else the cost model's choice there). Each runs while
    its symbols are at most ⌊√(min · opt)⌋, the most specific first (the step's "variants",
    picked per binding). Kernels equal to the primary (`primary`: its name) or to one already
    listed are left out."""
    if step.get("template") not in VARIANT_TEMPLATES or not params_symbolic(step["params"]):
        return []
    tuned = step["params"].get("tactic_small") or {}
    params = {k: v for k, v in step["params"].items() if k not in ("tactic", "tactic_small")}
    out: list[tuple[dict[str, int], str, KernelSpec]] = []
    seen = {primary}
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


def _origin(op: LaunchOp | ElementwiseOp) -> str:
    names = origin_of(op)
    return f", ONNX {', '.join(names)}" if names else ""
