"""select-tactics: each conv/matmul kernel op gets its tactic as an attribute that prints.

After this pass every `kernel.launch` of a template with tactic choices (conv, matmul: tile and
split-K) and static shapes carries `tactic = {splits = ..., tile = [...]}`, the cost model's
choice (the template's best-estimated candidate, what codegen would pick by itself), and codegen
emits exactly that tactic. Steps with symbolic sizes are left to codegen, which picks theirs at
the profile's opt shapes (and tunes small-shape variants). On the GPU the autotuner
(`codegen/autotune.py`) still times candidates and overrides this choice in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ember.codegen.templates import template_module
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import LaunchOp
from ember.runtime.symbolic import params_symbolic

# templates whose module offers `tactics(params, arch)`, best estimated first
TUNABLE = ("conv", "matmul")


@dataclass(frozen=True)
class SelectTactics(ModulePass):
    name = "select-tactics"

    arch: str = ""
    """The build's target ("sm_90": FP16/BF16 GEMMs may take Hopper's wgmma tactics, which
    compile for sm_90a); empty: tactics every arch runs."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in module.walk():
            if not isinstance(op, LaunchOp) or op.template.data not in TUNABLE \
                    or op.tactic is not None:
                continue
            params = attribute_value(op.params)
            if params_symbolic(params):
                continue
            options = template_module(op.template.data).tactics(params, self.arch or None)
            if options:
                op.properties["tactic"] = to_attribute(options[0])
