"""Legalizers of ONNX RNN, GRU and LSTM into nn.rnn / nn.lstm: every input and attribute carried
over (hidden_size from R where the node omits it); the omitted outputs are simply not used."""

from __future__ import annotations

from xdsl.ir import SSAValue

from ember.dialects.nn.dynamic_params import segments
from ember.dialects.nn.recurrent import LstmOp, RnnOp
from ember.dialects.onnx import OnnxOp
from ember.errors import ShapeError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.recurrent import ACTIVATIONS, OPTIONAL, activation_specs

_INPUT = {"bias": "B", "sequence_lens": "sequence_lens", "initial_h": "initial_h",
          "initial_c": "initial_c", "peepholes": "P"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@legalizes("RNN", "GRU", "LSTM")
def recurrent(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    cell = op.ONNX_TYPE.lower()
    x, w, r = (op.onnx_input(n) for n in ("X", "W", "R"))
    hidden = op.attr("hidden_size")
    if hidden is None:
        r_shape = b.shape(r)
        if not isinstance(r_shape[-1], int):
            raise b.unsupported("hidden_size is not given and R's last dim is not static")
        hidden = r_shape[-1]
    props: dict = {"hidden_size": int(hidden),
                   "direction": _text(op.attr("direction", "forward"))}
    if op.has_attr("layout"):
        props["layout"] = int(op.attr("layout"))
    if op.has_attr("activations"):
        names = [_text(a) for a in op.attr("activations")]
        unknown = [n for n in names if n not in ACTIVATIONS]
        if unknown:
            raise b.unsupported(f"activations {unknown} (ember has {', '.join(ACTIVATIONS)})")
        props["activations"] = names
    for name in ("activation_alpha", "activation_beta"):
        if op.has_attr(name):
            props[name] = [float(v) for v in op.attr(name)]
    if op.has_attr("clip"):
        props["clip"] = float(op.attr("clip"))
    if cell == "gru" and op.attr("linear_before_reset", 0):
        props["linear_before_reset"] = 1
    if cell == "lstm" and op.attr("input_forget", 0):
        props["input_forget"] = 1
    dirs = 2 if props["direction"] == "bidirectional" else 1
    try:  # the activation list must fit the directions (checked here, not when it runs)
        activation_specs(cell, props.get("activations"), props.get("activation_alpha"),
                             props.get("activation_beta"), dirs)
    except ShapeError as e:
        raise b.unsupported(str(e)) from None
    optional = [op.onnx_input(_INPUT[n]) for n in OPTIONAL[cell]]
    operands, segment = segments(x, w, r, *optional)
    if cell == "lstm":
        cls, n = LstmOp, 3
    else:
        cls, n = RnnOp, 2
        props["cell"] = cell
    try:
        new = b.op(cls, operands, {**props, **segment}, num_results=n)
    except ShapeError as e:
        raise b.unsupported(str(e)) from None
    # the node's present outputs, in order (an omitted one has no result)
    ours = dict(zip(("Y", "Y_h", "Y_c"), new.results, strict=False))
    return [ours[name] for name, field, _ in op.OUTPUT_SPECS if getattr(op, field) is not None]
