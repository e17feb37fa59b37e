"""`ember inspect MODEL.plan`: a plan's header (versions, target, I/O, memory, weights, kernels,
autotuning), its layers (the runtime's engine inspector: ONNX nodes, kernel, formats, precision,
tactic, arena offsets), `--explain LAYER` (why that layer is what it is, from the plan's
"explain" section: the fusion, the format and what each format cost, the precision policy, the
tactic and the candidates it beat) and `--graph OUT` (the fused layer graph, graphviz).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ember.compiler import inspect_reasons
from ember.errors import EmberError
from ember.runtime.files import write_atomic
from ember.runtime.inspector import EngineInspector, tactic_text
from ember.runtime.manifest_schema import Manifest
from ember.runtime.plan import read_plan


class PlanReport:
    """A plan read for inspection (validated as the loader validates it)."""

    def __init__(self, source: str | os.PathLike | bytes, name: str | None = None) -> None:
        path = self.path = name or (str(source) if not isinstance(source, bytes) else "plan")
        plan = read_plan(source)
        try:
            self.format_version, self.ember_version = plan.format_version, plan.ember_version
            self.manifest: dict[str, Any] = dict(plan.manifest)
            # a weight-stripped plan has no weights section: its manifest says the size
            Manifest.from_json(self.manifest, weights_bytes=len(plan.section("weights"))
                               if "weights" in plan.section_names
                               else int(self.manifest.get("weights_bytes", 0)))
            self.sections = {n: len(plan.section(n)) for n in plan.section_names}
            self.reasons: dict[str, Any] | None = None
            if inspect_reasons.SECTION in plan.section_names:
                try:
                    self.reasons = json.loads(bytes(plan.section(inspect_reasons.SECTION)))
                except ValueError:
                    raise EmberError(f"{path}: the plan's explain section is not JSON") from None
        finally:
            plan.close()
        self.inspector = EngineInspector(self.manifest)

    # -- the report ------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        m = self.manifest
        weights = [b for b in m["buffers"] if b.get("kind") == "weight"]
        out = {"plan": self.path, "format_version": self.format_version,
               "ember_version": self.ember_version, "target": m.get("target"),
               "inputs": m["inputs"], "outputs": m["outputs"], "layers": len(m["steps"]),
               "kernels": len(m.get("kernels") or []),
               "arena_bytes": m["arena_bytes"], "activation_bytes": m.get("activation_bytes"),
               "weights": {"buffers": len(weights), "bytes": m.get("weights_bytes")},
               "sections": self.sections}
        for key in ("autotune", "symbols", "profiles"):
            if m.get(key):
                out[key] = m[key]
        return out

    def to_json(self, layer: int | None = None) -> dict[str, Any]:
        """The plan (or one layer) as JSON data: TensorRT's engine inspector document (its
        capitalized keys: "Layers", "Bindings", ...; a layer's "Name", "LayerType", ...) with
        ember's own beside it (lower-case keys: the header, and "steps" as `layer` reads them)."""
        if layer is not None:
            return {**json.loads(self.inspector.get_layer_information(layer, "json")),
                    **self.layer(layer)}
        steps = range(len(self.manifest["steps"]))
        return {**json.loads(self.inspector.get_engine_information("json")), **self.header(),
                "steps": [self.layer(i) for i in steps]}

    def layer(self, index: int) -> dict[str, Any]:
        """A layer as the engine inspector reads it, with its tensors' arena offsets."""
        info = self.inspector.layer(index)
        buffers = self.manifest["buffers"]
        for t in (*info["inputs"], *info["outputs"]):
            b = buffers[t["buffer"]]
            while b.get("kind") == "view":
                b = buffers[b["base"]]
            if b.get("kind") in ("arena", "weight") and "offset" in b:
                t["offset"] = b["offset"]
                t["in"] = b["kind"]
        return info

    def text(self, layer: int | None = None) -> str:
        if layer is not None:
            return self.inspector.get_layer_information(layer) + "\n"
        h = self.header()
        target = h["target"] or {}
        where = (f"CUDA {target.get('arch')} (NVRTC {'.'.join(map(str, target['nvrtc']))}"
                 + (f"; {target['compatibility']}: any GPU from {target.get('arch')} up"
                    if target.get("compatibility") else "") + ")"
                 if target.get("device") == "cuda" and target.get("nvrtc")
                 else "CPU (any machine)")
        lines = [f"plan {self.path}: ember {h['ember_version']}, plan format "
                 f"{h['format_version']}, {where}"]
        for side in ("inputs", "outputs"):
            lines.append(f"{side}: " + ", ".join(
                f"{t['name']} {t['dtype']}[{'x'.join(map(str, t['shape']))}]"
                + (f" {t['format']}" if t.get("format") else "") for t in h[side]))
        lines.append(f"memory: arena {_mib(h['arena_bytes'])} (activations "
                     f"{_mib(h['activation_bytes'] or 0)} before sharing), weights "
                     f"{_mib(h['weights']['bytes'] or 0)} in {h['weights']['buffers']} buffer(s)")
        lines.append(f"layers: {h['layers']}, compiled kernels: {h['kernels']}, sections: "
                     + ", ".join(f"{n} {_mib(s)}" for n, s in h["sections"].items()))
        if "autotune" in h:
            lines.append("autotune: " + ", ".join(f"{k} {v}" for k, v in h["autotune"].items()))
        if "symbols" in h:
            lines.append("dynamic dims (min, opt, max): " + symbols_text(self.manifest))
        return "\n".join(lines) + "\n" + self.inspector.get_engine_information("text")

    # -- --explain --------------------------------------------------------------------------------
    def find(self, which: str | int) -> int:
        """A layer by index, step name ("conv_3") or the name of an ONNX node fused into it."""
        steps = self.manifest["steps"]
        text = str(which)
        if text.lstrip("-").isdigit():
            index = int(text)
            if not 0 <= index < len(steps):
                raise EmberError(f"layer {index} is out of range: the plan has {len(steps)} "
                                 "layer(s)")
            return index
        for i, s in enumerate(steps):
            if s["name"] == text:
                return i
        holding = [i for i, s in enumerate(steps) if text in s.get("origin", [])]
        if len(holding) == 1:
            return holding[0]
        if holding:
            names = ", ".join(steps[i]["name"] for i in holding)
            raise EmberError(f"ONNX node {text!r} is in layers {names}: give one of them")
        raise EmberError(f"no layer {text!r} in {self.path}: give an index (0-"
                         f"{len(steps) - 1}), a layer name (e.g. {steps[0]['name']!r}) or an "
                         "ONNX node name")

    def explain(self, which: str | int) -> dict[str, Any]:
        """Why layer `which` is what it is: its fusion, format, precision and tactic, each with
        what was chosen, why, and what it beat (with the costs the build estimated or
        measured)."""
        index = self.find(which)
        if self.reasons is None:
            raise EmberError(f"{self.path} records no reasons: built by an ember before "
                             "`inspect --explain` (rebuild it), or by passes that chose nothing "
                             "(no assign-precision, choose-formats or select-tactics)")
        info = self.layer(index)
        step = self.manifest["steps"][index]
        steps = self.reasons.get("steps") or []
        recorded = steps[index] if index < len(steps) and len(steps) == len(
            self.manifest["steps"]) else {}
        out = {"layer": index, "name": info["name"], "template": info["template"],
               "origin": info["origin"],
               "fusion": _fusion(step),
               "format": _format(info, recorded.get("format"), self.reasons.get("formats")),
               "precision": _precision(info, step, self.reasons.get("precision"),
                                       recorded.get("pinned")),
               "tactic": _tactic(info, step, recorded.get("tactic"))}
        if recorded.get("placement"):  # placed on the CPU, on the GPU by GPU_FALLBACK
            out["placement"] = {"chosen": "gpu", "why": recorded["placement"]}
        return out

    def explain_text(self, which: str | int) -> str:
        e = self.explain(which)
        lines = [f"layer {e['layer']} {e['name']} ({e['template']}), ONNX nodes: "
                 f"{', '.join(e['origin']) or '-'}"]
        for part in ("fusion", "format", "precision", "tactic", "placement"):
            entry = e.get(part)
            if entry is None:
                continue
            lines.append(f"{part}: {entry['chosen']}")
            lines.append(f"  why: {entry['why']}")
            for alt in entry.get("beat", []):
                lines.append(f"  beat: {alt}")
        return "\n".join(lines) + "\n"

    # -- --graph ----------------------------------------------------------------------------------
    def graph(self):
        """The fused layer graph as a graphviz Digraph: a box per layer (name, template, format,
        precision, ONNX nodes), an ellipse per network input and output, an edge per tensor."""
        try:
            import graphviz
        except ImportError:
            raise EmberError("--graph needs the graphviz Python package: pip install graphviz") \
                from None
        m = self.manifest
        buffers = m["buffers"]

        def base(j: int) -> int:
            while buffers[j].get("kind") == "view":
                j = buffers[j]["base"]
            return j

        g = graphviz.Digraph(name="plan", graph_attr={"rankdir": "TB"},
                             node_attr={"fontname": "Helvetica", "fontsize": "10"})
        producer: dict[int, str] = {}
        for k, t in enumerate(m["inputs"]):  # (ids without ':', which dot reads as a port)
            g.node(f"input{k}", f"{t['name']}\n{t['dtype']}{t['shape']}", shape="ellipse")
            producer[base(t["buffer"])] = f"input{k}"
        for i in range(len(m["steps"])):
            info = self.inspector.layer(i)
            label = [f"{info['name']}", f"{info['template']}  {info['format_out']}  "
                     f"{info['precision']}  {info['device']}"]
            if info.get("tactic"):
                label.append(tactic_text(info["tactic"]))
            if info["origin"]:
                label.append(_wrap(", ".join(info["origin"])))
            g.node(f"step{i}", "\n".join(label), shape="box",
                   style="filled", fillcolor="#e8e8e8" if "reformat" in info else "#ffffff")
            for t in info["inputs"]:
                src = producer.get(base(t["buffer"]))
                if src is not None:
                    g.edge(src, f"step{i}", label="x".join(map(str, t["shape"])))
            for t in info["outputs"]:
                producer[base(t["buffer"])] = f"step{i}"
        for k, t in enumerate(m["outputs"]):
            g.node(f"output{k}", f"{t['name']}\n{t['dtype']}{t['shape']}", shape="ellipse")
            src = producer.get(base(t["buffer"]))
            if src is not None:
                g.edge(src, f"output{k}")
        return g

    def write_graph(self, out: str | os.PathLike) -> list[Path]:
        """Write the graph: OUT.dot always (beside OUT), and OUT itself rendered by graphviz's
        `dot` when OUT is .svg/.png/.pdf (an error naming `dot` where it is not installed)."""
        out = Path(out)
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in ("dot", "gv", "svg", "png", "pdf"):
            raise EmberError(f"--graph {out}: give a .dot, .svg, .png or .pdf file")
        g = self.graph()
        dot_path = out if fmt in ("dot", "gv") else out.with_suffix(".dot")
        write_atomic(dot_path, g.source.encode())
        if fmt in ("dot", "gv"):
            return [dot_path]
        if shutil.which("dot") is None:
            raise EmberError(f"wrote {dot_path}; rendering {out} needs graphviz's `dot` "
                             "program, which is not installed (apt install graphviz), or render "
                             f"it elsewhere: dot -T{fmt} {dot_path} -o {out}")
        import graphviz

        try:
            data = g.pipe(format=fmt)
        except graphviz.backend.ExecutableNotFound:
            raise EmberError(f"wrote {dot_path}; rendering {out} needs graphviz's `dot`") \
                from None
        write_atomic(out, data)
        return [dot_path, out]


def _wrap(text: str, width: int = 48) -> str:
    out, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) > width:
            out.append(line)
            line = ""
        line += word + " "
    return "\n".join([*out, line.strip()])


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


# -- the reasons ----------------------------------------------------------------------------------

_RECOGNIZED = {  # templates that passes recognize from several ONNX nodes
    "attention": "fuse-attention recognized the attention pattern (MatMul, scale, Softmax, "
                 "MatMul) and made it one attention kernel",
    "layer_norm": "fuse-normalization recognized the layer-norm pattern (ReduceMean, Sub, Pow, "
                  "ReduceMean, Add, Sqrt, Div, Mul, Add) and made it one kernel",
    "group_norm": "fuse-normalization recognized a group norm",
    "attention_chain": "fuse-attention-kernels ran the kernels of a Q/DQ attention chain (Q/K/V "
                       "dequantizes, Q Kᵀ, softmax, P V, the transpose) as one kernel, each a "
                       "stage",
}


def _fusion(step: Mapping[str, Any]) -> dict[str, Any]:
    origin = list(step.get("origin", []))
    params = step.get("params") or {}
    template = step["template"]
    epilogue = params.get("epilogue")
    why = []
    if template in _RECOGNIZED and len(origin) > 1:
        why.append(_RECOGNIZED[template])
    if isinstance(epilogue, Mapping) and epilogue.get("ops"):
        fns = [op.get("fn") for op in epilogue["ops"] if isinstance(op, Mapping)]
        why.append(f"fuse-epilogues: the elementwise kernel after this {template} ("
                   f"{', '.join(map(str, fns))}) read only its result, in the same shape and "
                   f"format, so it runs as the {template}'s epilogue (no round trip through "
                   "memory)")
    region = params.get("region")
    if template == "elementwise" and isinstance(region, Mapping) and len(region.get("ops", [])) > 1:
        fns = [op.get("fn") for op in region["ops"] if isinstance(op, Mapping)]
        why.append(f"fuse-elementwise: a chain of elementwise ops ({', '.join(map(str, fns))}) "
                   "whose intermediate results nothing else read became one kernel")
    fused_fns = len([op for op in (epilogue or {}).get("ops", []) if op.get("fn") != "cast"]) \
        if isinstance(epilogue, Mapping) else 0
    if template not in _RECOGNIZED and template != "elementwise" \
            and len(origin) > 1 + fused_fns:
        why.append("nn-level folds merged these nodes (fold-batch-norm into the conv's weights, "
                   "fold-scale-shift, fold-pad, fold-constants)")
    if not why:
        why.append("nothing was fused into it" if origin else
                   "no ONNX node made it (a reformat or a cast at the network's edge)")
    chosen = f"{len(origin)} ONNX node(s) in one kernel" if origin else "no ONNX node"
    return {"chosen": chosen, "why": "; ".join(why)}


def _format(info: Mapping[str, Any], recorded: Mapping[str, Any] | None,
            summary: Mapping[str, Any] | None) -> dict[str, Any]:
    chosen = info["format_out"] if "reformat" not in info else info["reformat"]
    if "reformat" in info:
        return {"chosen": chosen, "why": "assign-layouts inserted this reformat: its producer "
                "and its consumer run in different formats (choose-formats found the reformat "
                "cheaper than running either in the other's format)"}
    if recorded is None:
        return {"chosen": chosen,
                "why": "no format choice is recorded for it: choose-formats weighs formats in "
                       "GPU builds, for kernels that touch a 4-D activation, and a kernel a later "
                       "pass rebuilt (fuse-elementwise, fold-channel-pad) does not keep the "
                       "record; it runs in the format its operands arrive in"}
    source = "measured on the GPU" if recorded.get("source") == "measured" else (
        "the cost model's estimates (no GPU timing)")
    costs = recorded.get("costs_us")
    out: dict[str, Any] = {"chosen": recorded["chosen"]}
    if not costs:
        out["why"] = ("one candidate format, or candidates that cost the same: assign-layouts' "
                      "policy format stands")
        return out
    mine = costs.get(recorded["chosen"])
    out["why"] = (f"choose-formats picked the least total kernel + reformat time over the graph, "
                  f"by {source}; this kernel takes {mine:.2f} us in {recorded['chosen']}")
    out["beat"] = [f"{f}: {c:.2f} us" for f, c in costs.items() if f != recorded["chosen"]]
    if summary:
        out["why"] += (f" (whole graph: kernels {summary.get('kernels_us', 0):.1f} us, "
                       f"{summary.get('reformats', 0)} reformat(s) "
                       f"{summary.get('reformats_us', 0):.1f} us)")
    out["costs_us"] = dict(costs)
    return out


def _precision(info: Mapping[str, Any], step: Mapping[str, Any],
               policy: Mapping[str, Any] | None, pinned: Mapping[str, str] | None
               ) -> dict[str, Any]:
    chosen = info["precision"]
    if policy is None:
        return {"chosen": chosen, "why": "assign-precision did not run: the model's own types"}
    low = policy.get("low") or ""
    allowed = ", ".join(filter(None, ["fp32", low, "tf32" if policy.get("tf32") else ""]))
    origin = info.get("origin") or []
    if origin and all(n.startswith(("cast(input:", "cast(output:")) for n in origin):
        why = ("a cast at the network's edge: inputs and outputs keep their declared types, "
               "layers inside run in the precision the policy gives them")
    elif pinned:
        pins = ", ".join(f"{n}: {p}" for n, p in pinned.items())
        why = (f"pinned by a per-layer precision ({pins}; constraints "
               f"{policy.get('constraints')})")
    elif chosen == low:
        why = f"the build allowed {low} and this is a compute op, which runs in the low precision"
    elif chosen == "tf32":
        why = "TF32 allowed: an FP32 conv/matmul may use TF32 tensor cores"
    elif chosen == "fp32" and low:
        why = (f"{low} allowed, but this op stays in FP32 (data movement following FP32 data, or "
               "an op ember keeps in FP32: resize, cumsum, quantize/dequantize, a cast)")
    elif chosen == "fp32":
        why = ("no FP16/BF16 allowed; TF32 applies to conv/matmul only" if policy.get("tf32")
               else "strict FP32: no lower precision and no TF32 allowed")
    else:
        why = f"its data is {chosen} (integer or boolean tensors are never converted)"
    return {"chosen": chosen, "why": f"{why}; allowed: {allowed}"}


def _tactic(info: Mapping[str, Any], step: Mapping[str, Any],
            recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    tactic = info.get("tactic")
    if recorded is None:
        if tactic:
            return {"chosen": tactic_text(tactic),
                    "why": "codegen chose it at the profile's opt shapes (symbolic sizes)"}
        kernel = (info.get("cuda") or {}).get("kernel")
        return {"chosen": kernel or f"{info['template']} (numpy)",
                "why": "its template has one kernel for these parameters: no tactic to choose"
                       if kernel else "a CPU step: the numpy kernel, no tactics"}
    chosen = recorded["chosen"]
    everyone = list(recorded.get("candidates", []))
    times = recorded.get("times_us")
    timed = isinstance(times, list) and len(times) == len(everyone)

    def label(i: int) -> str:
        if not timed:
            return tactic_text(everyone[i])
        t = times[i]
        return tactic_text(everyone[i]) + (f" ({t:.2f} us)" if isinstance(t, int | float)
                                           else f" ({t})")

    candidates = [i for i, c in enumerate(everyone) if c != chosen]
    rank = next((i for i, c in enumerate(everyone) if c == chosen), None)
    if recorded.get("by") == "autotune":
        why = ("the autotuner timed the candidates on the GPU and kept the fastest that "
               "computes what the reference candidate does" + (
                   f": {label(rank)}" if timed and rank is not None else
                   " (this build's autotuner did not record each candidate's time)"))
    elif rank == 0:
        why = "the cost model's best estimate among the candidates (no GPU timing in this build)"
    else:
        why = "forced by select-tactics' options (tile / sms)"
    out: dict[str, Any] = {"chosen": tactic_text(chosen), "why": why,
                           "beat": [label(i) for i in candidates]}
    if timed:
        out["times_us"] = {tactic_text(c): t for c, t in zip(everyone, times, strict=True)}
    if rank is not None and recorded.get("by") != "autotune":
        out["rank"] = rank + 1
    return out


__all__ = ["PlanReport"]


def symbols_text(manifest: Mapping[str, Any]) -> str:
    """Each symbol's range, a data-dependent one with the step that binds it:
    "N (1, 8, 32), nonzero0 (0, 96, 96; bound by step nonzero_3)"."""
    binders = {name: step["name"] for step in manifest["steps"]
               for name in step.get("binds") or {}}
    return ", ".join(f"{k} ({', '.join(map(str, v))}"
                     + (f"; bound by step {binders[k]})" if k in binders else ")")
                     for k, v in manifest.get("symbols", {}).items())
