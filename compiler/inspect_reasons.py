"""Why each kernel of a plan is what it is, as the passes recorded it in the final IR: the
format choose-formats chose and what each candidate format cost (`format`, `format_costs`, the
function's `formats` summary), the tactic select-tactics chose and the candidates it beat
(`tactic_candidates`, `tactic_chosen_by`), the precision policy assign-precision applied
(the module's `ember.precision`), and a layer placed on the CPU that runs on the GPU
(emit-cuda's `gpu_fallback`). The packer stores it as the plan's "explain" section (JSON);
`ember inspect MODEL.plan --explain LAYER` reads it. The runtime never does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Operation

from ember.codegen.emit_cuda import FALLBACK_ATTR
from ember.codegen.select_tactics import CANDIDATES_ATTR, CHOSEN_BY_ATTR, TIMES_ATTR
from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import LaunchOp
from ember.dialects.origin import origin_of
from ember.passes.assign_precision import POLICY_ATTR
from ember.passes.format_choice import FORMAT_ATTR, FORMAT_COSTS_ATTR, SUMMARY_ATTR

SECTION = "explain"
VERSION = 1


def _step_reasons(op: Operation, summary: dict[str, Any] | None,
                  pins: dict[str, str]) -> dict[str, Any]:
    reasons: dict[str, Any] = {}
    fmt = op.attributes.get(FORMAT_ATTR)
    if isinstance(fmt, StringAttr):
        entry: dict[str, Any] = {"chosen": fmt.data}
        if summary is not None:
            entry["source"] = summary.get("source")
        costs = op.attributes.get(FORMAT_COSTS_ATTR)
        if isinstance(costs, DictionaryAttr):
            entry["costs_us"] = attribute_value(costs)
        reasons["format"] = entry
    tactic = op.tactic if isinstance(op, LaunchOp) else None
    if tactic is not None:
        by = op.attributes.get(CHOSEN_BY_ATTR)
        entry = {"chosen": attribute_value(tactic),
                 "by": by.data if isinstance(by, StringAttr) else "cost model"}
        candidates = op.attributes.get(CANDIDATES_ATTR)
        if candidates is not None:
            entry["candidates"] = attribute_value(candidates)
        times = op.attributes.get(TIMES_ATTR)
        if times is not None:  # each candidate's time (us; None: failed or rejected)
            entry["times_us"] = attribute_value(times)
        reasons["tactic"] = entry
    moved = op.attributes.get(FALLBACK_ATTR)
    if isinstance(moved, StringAttr):  # placed on the CPU, run on the GPU (GPU_FALLBACK)
        reasons["placement"] = moved.data
    pinned = {n: pins[n] for n in origin_of(op) if n in pins}
    if pinned:
        reasons["pinned"] = pinned
    return reasons


def explanations(module: ModuleOp, kernel_ops: Sequence[Operation]) -> dict[str, Any]:
    """The "explain" section's JSON: the precision policy (None where assign-precision did not
    run), the format summary of the function, and each kernel op's reasons, in step order."""
    policy = module.attributes.get(POLICY_ATTR)
    policy_value = attribute_value(policy) if policy is not None else None
    pins = dict(policy_value.get("pins") or {}) if isinstance(policy_value, dict) else {}
    summaries: dict[Operation, dict[str, Any]] = {}
    formats = None
    for fn in module.ops:
        if isinstance(fn, func.FuncOp) and isinstance(fn.attributes.get(SUMMARY_ATTR),
                                                      DictionaryAttr):
            formats = attribute_value(fn.attributes[SUMMARY_ATTR])
            for op in fn.body.block.ops:
                summaries[op] = formats
    return {"version": VERSION, "precision": policy_value, "formats": formats,
            "steps": [_step_reasons(op, summaries.get(op), pins) for op in kernel_ops]}


def section_bytes(module: ModuleOp, kernel_ops: Sequence[Operation]) -> bytes | None:
    """The section's bytes; None where no pass recorded anything (no section then)."""
    reasons = explanations(module, kernel_ops)
    if reasons["precision"] is None and reasons["formats"] is None \
            and not any(reasons["steps"]):
        return None
    return json.dumps(reasons, separators=(",", ":")).encode()


__all__ = ["SECTION", "explanations", "section_bytes"]
