"""select-tactics: each tunable kernel op (conv, matmul, attention_chain, layer_norm) gets its
tactic as an attribute that prints.

After this pass every `kernel.launch` of a template with tactic choices (conv, matmul: tile and
split-K; attention_chain: whole score rows a warp or keys split over two; layer_norm: the warps
sharing a row) and static shapes
carries `tactic = {...}` (a GEMM's `{splits = ..., tile = [...]}`), the cost model's
choice (the template's best-estimated candidate, what codegen would pick by itself), and codegen
emits exactly that tactic; where there were several, `tactic_candidates` lists them (best
estimated first: what the choice beat, for `ember inspect --explain`). Steps with symbolic
sizes are left to codegen, which picks theirs at the profile's opt shapes (and tunes small-shape
variants).

With `autotune` (a build for the GPU present) the candidates of every conv/matmul are then
timed on that GPU (`codegen/autotune.py`, with its timing cache) and the fastest replaces the
cost model's `tactic`; a symbolic kernel gets the tactic timed at the profile's opt shapes and
`small_tactics` ("N,S" -> tactic) for its small-shape variants, timed at those symbols' min
(the profile's ranges: the module's `ember.symbols`). The counts (kernels tuned, timed, answered
from the cache, failed, rejected) are the module's `ember.autotune`, which the plan reports; a
kernel whose tactic the timing chose carries `tactic_chosen_by = "autotune"`.

Options: `arch`, the build's target; `sms`, the multiprocessors the cost models fill (FP32,
mma.sync and wgmma tiles alike; `gemm_tiles.SM_COUNT`, an H100/H200's 132, unless given);
`tile`, one FP32 register tile ("BM,BN,BK,TM,TN") forced on every conv/matmul without split-K
(other tunable kernels keep the cost model's choice),
for a tactic sweep (`benchmarks/bench_kernels.py --sweep`); `autotune`, time candidates on the
GPU present, which must be `arch`. An option that cannot take effect on a kernel (a forced tile
it has no such tactic for or that does not fit it, another SM count for symbolic kernels, whose
tactic codegen chooses at the profile's opt shapes) is an error naming the kernel; so is
autotune with `tile` or `sms` (the autotuner would replace the choice they make).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from ember.codegen.kernel_step import json_value, kernel_step
from ember.codegen.templates import gemm_tiles, template_module
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.dialects.kernel_templates import TEMPLATES
from ember.dialects.origin import origin_of
from ember.dialects.symbol_ranges import symbol_ranges
from ember.errors import PassError
from ember.runtime.arch import parse_arch
from ember.runtime.symbolic import params_symbolic

# templates whose module offers `tactics(params, arch, sms)`, best estimated first
TUNABLE = tuple(name for name, d in TEMPLATES.items() if d.tactics)
FORCEABLE = ("conv", "matmul")  # the GEMMs a forced `tile` applies to


@dataclass(frozen=True)
class SelectTactics(ModulePass):
    name = "select-tactics"

    arch: str = ""
    """The build's target ("sm_90": FP16/BF16 GEMMs may take Hopper's wgmma tactics, which
    compile for sm_90a); empty: tactics every arch runs."""

    sms: int = gemm_tiles.SM_COUNT
    """Multiprocessors of the target GPU, as the FP32 tiles' cost model counts them."""

    tile: str = ""
    """An FP32 register tile "BM,BN,BK,TM,TN" (gemm_tiles' TILES or SWEEP_TILES) forced on
    every conv/matmul, without split-K; empty: the cost model chooses."""

    autotune: bool = False
    """Time each conv/matmul's candidates on the GPU present (an `arch` GPU) and keep the
    fastest; off: the cost model's choice stands."""

    workspace: int = -1
    """The kernel workspace (split-K counters and partial sums) one tactic may use, in bytes:
    TensorRT's WORKSPACE memory pool limit steering the choice (candidates over it are not
    chosen, timed or not); -1: no limit."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        if self.autotune and not self.arch:
            raise PassError("select-tactics: autotune needs arch, the GPU present's (e.g. "
                            "sm_90)")
        if self.autotune and self._options():
            raise PassError(f"select-tactics: autotune and {self._options()}: the autotuner "
                            "would replace the cost model's choice they make")
        if self.sms < 1:
            raise PassError(f"select-tactics: sms={self.sms} is not a multiprocessor count")
        try:
            forced = gemm_tiles.parse_tile(self.tile) if self.tile else None
        except ValueError as e:
            raise PassError(f"select-tactics: {e}") from None
        if forced is not None and self.sms != gemm_tiles.SM_COUNT:
            raise PassError(f"select-tactics: tile='{self.tile}' forces every tactic, so "
                            f"sms={self.sms} (the cost model's) would have no effect: give one")
        for op in module.walk():
            if not isinstance(op, LaunchOp) or op.template.data not in TUNABLE \
                    or op.tactic is not None and forced is None:
                continue
            params = attribute_value(op.params)
            if params_symbolic(params):
                if forced is not None or self.sms != gemm_tiles.SM_COUNT:
                    raise PassError(f"select-tactics: {_where(op)} has symbolic sizes: codegen "
                                    "chooses its tactic at the profile's opt shapes, so "
                                    f"{self._options()} cannot apply to it")
                continue
            options = template_module(op.template.data).tactics(params, self.arch or None,
                                                                self.sms)
            if self.workspace >= 0:
                options = within_workspace(op.template.data, params, options, self.workspace)
            if forced is not None and op.template.data in FORCEABLE:
                op.properties["tactic"] = to_attribute(_forced(op, forced, params, options))
            elif options:
                op.properties["tactic"] = to_attribute(options[0])
            if len(options) > 1:  # what the choice beat, for `ember inspect --explain`
                op.attributes[CANDIDATES_ATTR] = to_attribute(options)
        if self.autotune:
            _autotune(module, self.arch, self.workspace)

    def _options(self) -> str:
        given = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                 for k, v in (("sms", self.sms), ("tile", self.tile))
                 if v != getattr(SelectTactics, k)]
        return " ".join(given)


AUTOTUNE_COUNTS = "ember.autotune"  # module attribute: the autotuner's counts, for the plan
# kernel op attributes for `ember inspect --explain`: the candidates the choice was made among
# (the cost model's order, its choice first), and "autotune" where the GPU's timing chose
CANDIDATES_ATTR = "tactic_candidates"
CHOSEN_BY_ATTR = "tactic_chosen_by"
# the autotuner's outcome for each of `tactic_candidates`, in their order: microseconds, or why
# there is no time ("failed", "rejected", "did not compile", "from the timing cache", "not
# timed")
TIMES_ATTR = "tactic_times_us"


def within_workspace(template: str, params: dict, options: list[dict], limit: int
                     ) -> list[dict]:
    """The candidates whose workspace fits `limit`, best first; where none does, the same
    tiles without split-K (no workspace), as TensorRT picks another tactic under its limit."""
    fitting = [t for t in options if workspace_need(template, params, t) <= limit]
    if fitting:
        return fitting
    unsplit = []
    for t in options:
        whole = {**t, "splits": 1} if "splits" in t else t
        if whole not in unsplit and workspace_need(template, params, whole) <= limit:
            unsplit.append(whole)
    return unsplit


def workspace_need(template: str, params: dict, tactic: dict) -> int:
    """The workspace bytes a step's kernel with `tactic` asks for (its split-K counters,
    256-byte aligned as the runtime lays them out, and partial sums); 0 where it cannot be
    emitted (codegen then says why)."""
    from ember.codegen.emit_cuda import emit_step
    from ember.errors import EmberError

    try:
        _, spec = emit_step({"name": f"{template}_ws", "template": template,
                             "params": json_value({**params, "tactic": tactic})})
    except EmberError:
        return 0
    return -(-int(spec.counter_bytes) // 256) * 256 + int(spec.workspace_bytes)


def _autotune(module: ModuleOp, arch: str, workspace: int = -1) -> None:
    """Time every tunable kernel's candidates on the GPU present and set the fastest."""
    from ember.codegen.autotune import autotune, tactic_key
    from ember.runtime import cuda

    present = cuda.gpu_arch()
    if present is None or parse_arch(present) != parse_arch(arch):
        raise PassError(f"select-tactics: autotune times tactics on a {arch} GPU; the GPU "
                        f"here is {present or 'absent'}")
    ranges = symbol_ranges(module)
    kernels = [op for fn in module.ops if isinstance(fn, func.FuncOp)
               for op in fn.body.block.ops if isinstance(op, LaunchOp | ElementwiseOp)]
    steps = []
    for index, op in enumerate(kernels):
        template, params = kernel_step(op, ranges, codegen=True)
        steps.append({"name": f"{template}_{index}", "template": template,
                      "params": json_value(params), "origin": origin_of(op)})
    tuning = autotune({"steps": steps, "symbols": {k: list(v) for k, v in ranges.items()}},
                      arch, workspace)
    for (index, slot), outcome in tuning.times.items():
        candidates = kernels[index].attributes.get(CANDIDATES_ATTR)
        if slot != ("tactic",) or candidates is None:
            continue
        got = {tactic_key(t): v for t, v in outcome}
        kernels[index].attributes[TIMES_ATTR] = to_attribute(
            [got.get(tactic_key(c), "not timed")
             for c in attribute_value(candidates)])
    small: dict[int, dict[str, dict]] = {}
    for index, slot, tactic in tuning.choices:
        if slot == ("tactic",):
            kernels[index].properties["tactic"] = to_attribute(tactic)
            kernels[index].attributes[CHOSEN_BY_ATTR] = StringAttr("autotune")
        else:
            small.setdefault(index, {})[slot[1]] = tactic
    for index, tactics in small.items():
        kernels[index].properties["small_tactics"] = to_attribute(tactics)
    module.attributes[AUTOTUNE_COUNTS] = to_attribute(tuning.stats)


def _forced(op: LaunchOp, tile: gemm_tiles.Tile, params: dict, options: list[dict]) -> dict:
    """The tactic of a forced tile for one kernel, or an error naming the kernel."""
    if not any("tile" in o for o in options):
        reason = ("it has tensor-core tactics only, no FP32 register tile" if options
                  else "it has no GEMM tactic (a direct kernel)")
        raise PassError(f"select-tactics: tile '{_spelled(tile)}' cannot be forced on "
                        f"{_where(op)}: {reason}")
    try:
        gemm_tiles.tile_fits(tile, params)
    except ValueError as e:
        raise PassError(f"select-tactics: tile '{_spelled(tile)}' cannot be forced on "
                        f"{_where(op)}: {e}") from None
    return gemm_tiles.tactic_params(gemm_tiles.Gemm(tile))


def _spelled(tile: gemm_tiles.Tile) -> str:
    return ",".join(str(v) for v in (tile.bm, tile.bn, tile.bk, tile.tm, tile.tn))


def _where(op: LaunchOp) -> str:
    origin = origin_of(op)
    return f"kernel.launch '{op.template.data}'" + (
        f" (ONNX {', '.join(origin)})" if origin
        else f" -> {', '.join(str(r.type) for r in op.results)}")
