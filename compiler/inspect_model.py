"""`ember inspect MODEL.onnx`: what a model is (I/O, opsets, op histogram, parameters) and
everything in it that ember cannot compile yet, all at once: the importer's checks, then every
node asked of the legalizer (convert-onnx-to-nn) in turn, collecting each failure instead of
stopping at the first.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from ember.compiler.onnx_importer import import_onnx, load_model
from ember.errors import EmberError, ModelImportError, NodeProblem


@dataclass
class ModelReport:
    """What `inspect_model` found; `to_json()` is what `--json` prints."""

    path: str
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    nodes: int
    ops: dict[str, int]
    parameters: int
    parameter_bytes: int
    initializers: int
    unsupported: list[NodeProblem] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # nodes after an unsupported one

    def to_json(self) -> dict[str, Any]:
        return {"model": self.path, "ir_version": self.ir_version, "opsets": self.opsets,
                "producer": self.producer, "inputs": self.inputs, "outputs": self.outputs,
                "nodes": self.nodes, "ops": self.ops,
                "parameters": {"count": self.parameters, "bytes": self.parameter_bytes,
                               "initializers": self.initializers},
                "supported": not self.unsupported,
                "unsupported": [{"node": p.node, "op_type": p.op_type, "reason": p.reason}
                                for p in self.unsupported],
                "unchecked": self.unchecked}

    def text(self) -> str:
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items()) or "none"
        lines = [f"model {self.path}: IR version {self.ir_version}, opset {opsets}"
                 + (f", producer {self.producer}" if self.producer else "")]
        for side, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"{side}:")
            width = max((len(t["name"]) for t in tensors), default=0)
            lines += [f"  {t['name']:{width}}  {t['dtype']:8} {_dims_text(t['shape'])}"
                      for t in tensors]
        lines.append(f"parameters: {self.parameters:,} in {self.initializers} initializer(s) "
                     f"and constant(s), {_bytes_text(self.parameter_bytes)}")
        lines.append(f"nodes: {self.nodes} ({len(self.ops)} op types)")
        width = max((len(k) for k in self.ops), default=0)
        lines += [f"  {op:{width}}  {n}" for op, n in self.ops.items()]
        if not self.unsupported:
            lines.append(f"ember: every node imports and legalizes ({self.nodes} node(s))")
        else:
            kinds = sorted({p.op_type for p in self.unsupported})
            lines.append(f"ember cannot compile {len(self.unsupported)} node(s) yet "
                         f"({', '.join(kinds)}):")
            lines += [f"  - {p}" for p in self.unsupported]
            if self.unchecked:
                lines.append(f"  ({len(self.unchecked)} node(s) that read their results were "
                             "not checked)")
        return "\n".join(lines) + "\n"


def _dims_text(shape: list[int | str] | None) -> str:
    return "unranked" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _tensor_info(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    kind = vi.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": vi.name, "dtype": kind or "untyped", "shape": None}
    tt = vi.type.tensor_type
    try:  # numpy's names, as ember's plans and errors spell dtypes
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = TensorProto.DataType.Name(tt.elem_type).lower() if tt.elem_type else "undefined"
    shape = ([d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
              for d in tt.shape.dim] if tt.HasField("shape") else None)
    return {"name": vi.name, "dtype": dtype, "shape": shape}


def _size(t: TensorProto) -> tuple[int, int]:
    """(elements, bytes) of a tensor, without decoding external or raw data."""
    count = int(np.prod(t.dims)) if t.dims else 1
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 0
    return count, count * itemsize


def legalization_problems(model: onnx.ModelProto) -> tuple[list[NodeProblem], list[str]]:
    """Every node ember cannot compile yet, and the nodes not checked because they read a
    result of one of those. The importer's checks first (all of them); then each node is
    legalized as convert-onnx-to-nn does, every failure collected."""
    from xdsl.rewriter import Rewriter

    from ember.dialects.nn.elementwise import WeightOp as NNWeightOp
    from ember.dialects.onnx import OnnxOp, WeightOp
    from ember.dialects.weights import weights_of
    from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN
    from ember.passes.convert_onnx_to_nn.registry import LEGALIZERS

    try:
        module = import_onnx(model)
    except ModelImportError as e:
        return list(e.problems), []
    store = weights_of(module)
    problems: list[NodeProblem] = []
    unchecked: list[str] = []
    for op in list(module.walk()):
        if isinstance(op, WeightOp):
            Rewriter.replace_op(op, NNWeightOp.create(properties={"ref": op.ref},
                                                      result_types=[op.result.type]))
        elif isinstance(op, OnnxOp):
            name = op.node_name or ""
            if op.ONNX_TYPE not in LEGALIZERS:
                problems.append(NodeProblem(name, op.ONNX_TYPE,
                                            f"no lowering to nn for {op.ONNX_TYPE}"))
            elif any(isinstance(v.owner, OnnxOp) for v in op.operands):
                unchecked.append(name or op.ONNX_TYPE)
            else:
                try:
                    ConvertOnnxToNN._legalize(op, store)
                except EmberError as e:
                    reason = str(e)
                    prefix = f"node '{name or '<unnamed>'}' ({op.ONNX_TYPE}): "
                    problems.append(NodeProblem(name, op.ONNX_TYPE, reason.removeprefix(prefix)))
    return problems, unchecked


def inspect_model(model: onnx.ModelProto | str | os.PathLike) -> ModelReport:
    """The report of an ONNX model (see the module docstring)."""
    proto, source = load_model(model)
    graph = proto.graph
    inits = {t.name for t in graph.initializer}
    count = nbytes = 0
    tensors = list(graph.initializer)
    tensors += [a.t for n in graph.node if n.op_type == "Constant" and n.domain in ("", "ai.onnx")
                for a in n.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR]
    for t in tensors:
        c, b = _size(t)
        count, nbytes = count + c, nbytes + b
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                  for n in graph.node)
    problems, unchecked = legalization_problems(proto)
    return ModelReport(
        path=str(model) if isinstance(model, str | os.PathLike) else source,
        ir_version=proto.ir_version,
        opsets={o.domain: o.version for o in proto.opset_import},
        producer=" ".join(filter(None, (proto.producer_name, proto.producer_version))),
        inputs=[_tensor_info(vi) for vi in graph.input if vi.name not in inits],
        outputs=[_tensor_info(vi) for vi in graph.output],
        nodes=len(graph.node), ops=dict(ops.most_common()),
        parameters=count, parameter_bytes=nbytes, initializers=len(tensors),
        unsupported=problems, unchecked=unchecked)


__all__ = ["ModelReport", "inspect_model", "legalization_problems"]
