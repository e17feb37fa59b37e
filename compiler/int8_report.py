"""`ember build --int8 --report`: how far an INT8 build is from FP32, per output and per
quantized layer, so that a user knows which layers to pin to a higher precision
(`--layer-precisions NODE:fp32`).

The quantized model (the model's own Q/DQ nodes, or what calibration wrote) is built again with
every quantized layer's output (a Conv / ConvTranspose / MatMul / Gemm reading a dequantized
input) also marked as an output, in the build's own precisions, and run on the CPU executor
(its integer sums are the GPU kernels' exactly; its FP16 is numpy's float16 storage with float32
arithmetic, as the kernels do). The FP32 reference is onnxruntime on the float model: the model
before calibration, or a Q/DQ model with its quantize/dequantize pairs removed (constant weights
dequantized). Marking the layer outputs keeps each float value before its quantize, which the
plan that was written fuses away; the arithmetic is the same.

Each layer's figure is the rel-L2 of its output against FP32, and the error it adds: that
minus the largest rel-L2 of the quantized layers upstream of it (whose error it inherits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ember.errors import EmberError

LAYER_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class LayerError:
    node: str       # the ONNX node's name ("" where it has none: it cannot be pinned)
    tensor: str     # its output
    rel_l2: float   # against FP32
    added: float    # rel_l2 minus the largest of the quantized layers upstream

    def text(self) -> str:
        label = self.node or f"(unnamed node of {self.tensor})"
        return f"  {label:40} rel-L2 {self.rel_l2:.2e}  added {self.added:+.2e}"


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return math.inf
    norm = float(np.linalg.norm(want))
    diff = float(np.linalg.norm(got - want))
    return diff / norm if norm else (0.0 if diff == 0 else math.inf)


def quantized_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The layers of a Q/DQ model that read a dequantized input, in graph order."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear"
                   for o in n.output}
    return [n for n in model.graph.node if n.op_type in LAYER_OPS and n.output
            and any(x in dequantized for x in n.input)]


def without_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model a Q/DQ model stands for: each DequantizeLinear of a constant becomes its
    dequantized value (an initializer), each other DequantizeLinear reads the float value its
    QuantizeLinear quantized, and the QuantizeLinear / DequantizeLinear nodes go."""
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    rename: dict[str, str] = {}
    floats: list[onnx.TensorProto] = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        source = producer.get(node.input[0])
        if node.input[0] in inits:
            values = {x: numpy_helper.to_array(inits[x]) for x in node.input if x}
            if not all(x in inits for x in node.input if x):
                raise EmberError(f"--report: DequantizeLinear '{node.name}' of a constant has "
                                 "a scale or zero point that is not a constant")
            (value,) = ReferenceEvaluator(node).run(None, values)
            floats.append(numpy_helper.from_array(np.asarray(value), node.output[0]))
        elif source is not None and source.op_type == "QuantizeLinear":
            rename[node.output[0]] = source.input[0]
        else:
            raise EmberError(f"--report: DequantizeLinear '{node.name}' reads neither a "
                             "constant nor a QuantizeLinear: the float model it stands for is "
                             "not known")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for node in graph.node:
        if node.op_type in QDQ:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(x, x) for x in node.input]
        out.graph.node.append(copy)
    for vi in out.graph.output:
        vi.name = rename.get(vi.name, vi.name)
    out.graph.initializer.extend(floats)
    return out


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """`model` with `names` also graph outputs (typed from ONNX's inference, else float)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
    except Exception:  # noqa: BLE001 -- inference is a help: float otherwise
        types = {}
    present = {o.name for o in out.graph.output}
    out.graph.output.extend(
        helper.make_tensor_value_info(n, types.get(n) or onnx.TensorProto.FLOAT, None)
        for n in names if n not in present)
    return out


def float_names(qdq_model: onnx.ModelProto, float_model: onnx.ModelProto,
                tensors: list[str]) -> dict[str, str]:
    """Each layer output of the Q/DQ model -> its name in the float model: the same, or where
    the quantizer renamed a graph output (`y` became `y_QuantizeLinear_Input`, its
    QuantizeLinear -> DequantizeLinear writing `y`), the DequantizeLinear's output. A tensor
    with neither is left out."""
    known = {o for n in float_model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in qdq_model.graph.node:
        for x in node.input:
            consumers.setdefault(x, []).append(node)
    names = {}
    for t in tensors:
        if t in known:
            names[t] = t
            continue
        for q in consumers.get(t, []):
            if q.op_type != "QuantizeLinear":
                continue
            for dq in consumers.get(q.output[0], []):
                if dq.op_type == "DequantizeLinear" and dq.output[0] in known:
                    names[t] = dq.output[0]
    return names


def upstream_layers(model: onnx.ModelProto, layers: list[onnx.NodeProto]) -> dict[str, set[str]]:
    """Each layer output -> the outputs of the nearest quantized layers it reads through other
    nodes (none: it reads only inputs and constants)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    tensors = {n.output[0] for n in layers}
    found: dict[str, set[str]] = {}
    for layer in layers:
        seen: set[str] = set()
        todo = [x for x in layer.input if x]
        upstream: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in tensors:
                upstream.add(name)
                continue
            node = producer.get(name)
            if node is not None:
                todo += [x for x in node.input if x]
        found[layer.output[0]] = upstream
    return found


def int8_report(float_model: onnx.ModelProto, qdq_model: onnx.ModelProto,
                feeds: Mapping[str, np.ndarray], config, top: int = 10,
                calibrated: bool = True) -> str:
    """The report's text: each output's error, then the `top` layers by added error. `config`:
    the INT8 build's BuilderConfig (its precisions; the report builds for the CPU);
    `calibrated`: the Q/DQ nodes are calibration's (so --layer-precisions keeps a layer out),
    else the model's own."""
    from ember.compiler.builder import BuilderConfig, build_model
    from ember.compiler.debug import engine_runner, reference_outputs
    from ember.runtime.plan import plan_bytes

    layers = quantized_layers(qdq_model)
    if not layers:
        return "INT8 report: no layer is quantized (no Conv / MatMul / Gemm reads a " \
               "dequantized input)\n"
    names = float_names(qdq_model, float_model, [n.output[0] for n in layers])
    layers = [n for n in layers if n.output[0] in names]
    tensors = [n.output[0] for n in layers]
    outputs = [o.name for o in float_model.graph.output]
    report_config = BuilderConfig(flags=config.flags,
                                  layer_precisions=dict(config.layer_precisions),
                                  layer_output_types=dict(config.layer_output_types),
                                  profiles=list(config.profiles))
    plan = plan_bytes(*build_model(with_outputs(qdq_model, tensors), report_config))
    got = engine_runner("cpu")(plan, feeds)
    want, reference = reference_outputs(with_outputs(float_model, [names[t] for t in tensors]),
                                        feeds)
    errors = {t: rel_l2(got[t], want[names[t]]) for t in tensors}
    upstream = upstream_layers(qdq_model, layers)
    rows = [LayerError(n.name, n.output[0], errors[n.output[0]],
                       errors[n.output[0]] - max((errors[u] for u in upstream[n.output[0]]),
                                                 default=0.0)) for n in layers]
    rows.sort(key=lambda r: -r.added)
    lines = [f"INT8 report ({len(layers)} quantized layers; reference: {reference} on the FP32 "
             "model; ember on the CPU executor):",
             *(f"  output {name}: rel-L2 {rel_l2(got[name], want[name]):.2e}, max abs "
               f"{float(np.max(np.abs(np.asarray(got[name], np.float64) - want[name]))):.3g}"
               for name in outputs),
             f"layers adding the most error (rel-L2 against FP32; added: over the quantized "
             f"layers they read), top {min(top, len(rows))}:",
             *(r.text() for r in rows[:top]),
             "keep one out of INT8 with --layer-precisions NODE:fp32 (or fp16)" if calibrated
             else "the model's Q/DQ nodes say where INT8 goes: remove a layer's to keep it float"]
    return "\n".join(lines) + "\n"


__all__ = ["LayerError", "float_names", "int8_report", "quantized_layers", "rel_l2",
           "upstream_layers", "with_outputs", "without_qdq"]
