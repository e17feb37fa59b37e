"""A REFIT build's side of refitting (BuilderFlag.REFIT / STRIP_PLAN): the recipe trace the
passes keep while they fold weights (`start_trace`, the module's `WeightStore.refit`), and from it
the plan's refit table (runtime/refit.py) — which initializers a refit may change, each plan
weight's recipe, a digest of every initializer folded for good — checked here by replaying
every recipe over the build's own initializers, which must give the packed bytes exactly.
STRIP_PLAN then leaves the refittable weights' bytes out of the plan.

An initializer is refittable when every plan weight it reaches has a replayable recipe and no
code read its values without keeping one (`traced_value` versus `constant_value` in the passes):
the folds that keep recipes are BatchNorm into conv or into a scale and shift, constant folding
of nn ops, multiplies and adds into a conv or matmul (fold-scale-shift), precision casts, layout
changes (OHWI, NC4HW4, depthwise packing, K-major matmul weights, channel padding). Weights other
passes fold (Q/DQ, merged parallel matmuls, normalization and attention recognition, shape
values) stay constants of the plan: a refit that would change one is refused, naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import onnx
from xdsl.dialects.builtin import ModuleOp

from ember.dialects.weights import weights_of
from ember.runtime import refit_recipes
from ember.runtime.manifest_schema import Manifest
from ember.runtime.refit import (
    KEPT_SECTION,
    SECTION,
    Constant,
    RefitTable,
    RefitWeight,
    Source,
    digest,
)
from ember.runtime.refit_recipes import RecipeTrace


def start_trace(module: ModuleOp, model: onnx.ModelProto) -> RecipeTrace:
    """Keep recipes from here on: each initializer's store entry is a leaf."""
    store = weights_of(module)
    trace = RecipeTrace()
    for init in model.graph.initializer:
        if init.name in store:
            trace.recipes[init.name] = refit_recipes.initializer(init.name)
    store.refit = trace
    return trace


def blame(trace: RecipeTrace, pass_name: str) -> None:
    """After a pass: the initializers it baked into the plan are its doing."""
    for name, why in trace.baked.items():
        if not why:
            trace.baked[name] = f"the {pass_name} pass folded its values without a refit recipe"


def refit_sections(module: ModuleOp, manifest: Manifest, sections: Mapping[str, bytes],
                   weight_refs: Mapping[int, str], *, strip: bool) -> dict[str, bytes]:
    """The plan's sections with its refit table (and, with `strip`, without the refittable
    weights' bytes)."""
    store = weights_of(module)
    trace = store.refit
    assert isinstance(trace, RecipeTrace)
    initializers = {n: store[n] for n, r in trace.recipes.items()
                    if r == refit_recipes.initializer(n)}
    weights = sections["weights"]
    checked: list[tuple[int, dict, frozenset[str]]] = []
    for buffer_id, ref in weight_refs.items():
        recipe = trace.recipes.get(ref)
        if recipe is None:
            continue
        leaves = frozenset(refit_recipes.leaves(recipe))
        buf = manifest.buffers[buffer_id]
        dtype = np.dtype(buf.dtype)
        nbytes = int(np.prod(buf.shape, dtype=np.int64)) * dtype.itemsize
        made = np.ascontiguousarray(refit_recipes.replay(recipe, initializers), dtype=dtype)
        if made.tobytes() != weights[buf.offset:buf.offset + nbytes]:
            for name in leaves:
                trace.baked.setdefault(name, f"replaying the recipe of weight '{ref}' did not "
                                       "give the packed bytes (an ember bug: please report it)")
            continue
        checked.append((buffer_id, recipe, leaves))
    refittable = set().union(*(leaves for _, _, leaves in checked)) - set(trace.baked)
    changed = True
    while changed:  # a weight folded from a constant and a refittable initializer: both constant
        changed = False
        for _, _, leaves in checked:
            if leaves & refittable and not leaves <= refittable:
                fixed = sorted(leaves - refittable)[0]
                for name in leaves & refittable:
                    trace.baked.setdefault(name, f"folded together with '{fixed}', which is "
                                           "not refittable")
                refittable -= leaves
                changed = True
    table = RefitTable(
        stripped=strip,
        sources={n: Source(n, a.dtype.name, tuple(a.shape)) for n, a in initializers.items()
                 if n in refittable},
        weights=tuple(RefitWeight(b, r, leaves) for b, r, leaves in checked
                      if leaves <= refittable),
        constants={n: Constant(n, digest(a), trace.baked.get(n) or (
            "no plan weight reads it (its values became kernel parameters, or it is unused)"))
            for n, a in initializers.items() if n not in refittable})
    floats = [n for n, a in initializers.items() if n not in refittable and a.dtype.kind == "f"
              and a.size > 1]
    if floats:
        warnings.warn(f"REFIT: {len(floats)} float initializer(s) are not refittable and stay "
                      f"constants of the plan: " + "; ".join(
                          f"'{n}' ({table.constants[n].why})" for n in floats[:8])
                      + (" ..." if len(floats) > 8 else ""), stacklevel=2)
    out = dict(sections)
    if strip:
        stripped = sorted((manifest.buffers[w.buffer].offset, int(np.prod(
            manifest.buffers[w.buffer].shape, dtype=np.int64)) * np.dtype(
            manifest.buffers[w.buffer].dtype).itemsize) for w in table.weights)
        kept, at = [], 0
        for off, n in stripped:
            if off > at:
                kept.append((at, off - at))
            at = max(at, off + n)
        if at < len(weights):
            kept.append((at, len(weights) - at))
        table = RefitTable(True, table.sources, table.weights, table.constants, tuple(kept))
        del out["weights"]
        out[KEPT_SECTION] = b"".join(weights[off:off + n] for off, n in kept)
    out[SECTION] = table.section()
    return out
