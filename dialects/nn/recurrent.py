"""Recurrent ops: nn.rnn (ONNX RNN and GRU, `cell` rnn / gru: Y and Y_h) and nn.lstm (Y, Y_h,
Y_c), with every ONNX attribute as a property; the semantics are the numpy kernel's
(runtime/cpu_kernels/recurrent.py)."""

from __future__ import annotations

from typing import Any

from xdsl.dialects.builtin import ArrayAttr, DenseArrayBase, FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, kernel_params, like
from ember.dialects.nn.dynamic_params import SEGMENTED
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.recurrent import DIRECTIONS, GATES, OPTIONAL


class _Recurrent(NNOp):
    """What nn.rnn and nn.lstm share: shapes from X [seq, batch, in] (layout 0) or
    [batch, seq, in] (layout 1), W [dirs, gates * hidden, in], R [dirs, gates * hidden, hidden];
    Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]); states
    [dirs, batch, hidden] (layout 1: [batch, dirs, hidden])."""

    def cell_name(self) -> str:
        raise NotImplementedError

    def present(self) -> list[str]:
        return [n for n in OPTIONAL[self.cell_name()] if getattr(self, n) is not None]

    def kernel_params(self, inputs=None) -> dict[str, Any]:
        params = kernel_params(self, inputs)
        params["cell"] = self.cell_name()
        if self.present():
            params["optional"] = self.present()
        return params

    def infer_recurrent(self, results: int) -> list[Attribute]:
        cell = self.cell_name()
        x = self.operand_shape(0)
        w = self.operand_shape(1)
        hidden = self.prop("hidden_size")
        direction = self.prop("direction")
        if direction not in DIRECTIONS:
            raise ShapeError(f"nn.{cell}: direction '{direction}' (one of "
                             f"{', '.join(DIRECTIONS)})")
        dirs = 2 if direction == "bidirectional" else 1
        if len(x) != 3 or len(w) != 3:
            raise ShapeError(f"nn.{cell}: X {list(x)} and W {list(w)} must be 3-D")
        if isinstance(w[0], int) and w[0] != dirs or isinstance(w[1], int) and \
                w[1] != GATES[cell] * hidden:
            raise ShapeError(f"nn.{cell}: W {list(w)} does not fit {dirs} direction(s) of "
                             f"{GATES[cell]} gates of {hidden}")
        layout = self.prop("layout") or 0
        seq, batch = (x[1], x[0]) if layout else (x[0], x[1])
        y = [batch, seq, dirs, hidden] if layout else [seq, dirs, batch, hidden]
        state = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
        return [like(self.input, y)] + [like(self.input, state)] * (results - 1)


def _format(optional: tuple[str, ...], results: tuple[str, ...]) -> str:
    groups = " ".join(f"(`{n}` `(` ${n}^ `:` type(${n}) `)`)?" for n in optional)
    outs = " `,` ".join(f"type(${r})" for r in results)
    return (f"$input `,` $w `,` $r {groups} attr-dict `:` type($input) `,` type($w) `,` "
            f"type($r) `->` {outs}")


_PROPS = dict(
    hidden_size=prop_def(IntegerAttr), direction=prop_def(StringAttr),
    layout=opt_prop_def(IntegerAttr), activations=opt_prop_def(ArrayAttr),
    activation_alpha=opt_prop_def(DenseArrayBase), activation_beta=opt_prop_def(DenseArrayBase),
    clip=opt_prop_def(FloatAttr))


@irdl_op_definition
class RnnOp(_Recurrent):
    """ONNX RNN (`cell` "rnn") or GRU (`cell` "gru", with `linear_before_reset`): Y, Y_h."""

    name = "nn.rnn"
    input = operand_def()
    w = operand_def()
    r = operand_def()
    bias = opt_operand_def()
    sequence_lens = opt_operand_def()
    initial_h = opt_operand_def()
    cell = prop_def(StringAttr)
    hidden_size = _PROPS["hidden_size"]
    direction = _PROPS["direction"]
    layout = _PROPS["layout"]
    activations = _PROPS["activations"]
    activation_alpha = _PROPS["activation_alpha"]
    activation_beta = _PROPS["activation_beta"]
    clip = _PROPS["clip"]
    linear_before_reset = opt_prop_def(IntegerAttr)
    y = result_def()
    y_h = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = _format(OPTIONAL["rnn"], ("y", "y_h"))

    def cell_name(self) -> str:
        cell = self.cell.data
        if cell not in ("rnn", "gru"):
            raise ShapeError(f"nn.rnn: cell '{cell}' (rnn or gru)")
        return cell

    def infer(self) -> list[Attribute]:
        return self.infer_recurrent(2)


@irdl_op_definition
class LstmOp(_Recurrent):
    """ONNX LSTM: Y, Y_h, Y_c (with peepholes and `input_forget`)."""

    name = "nn.lstm"
    input = operand_def()
    w = operand_def()
    r = operand_def()
    bias = opt_operand_def()
    sequence_lens = opt_operand_def()
    initial_h = opt_operand_def()
    initial_c = opt_operand_def()
    peepholes = opt_operand_def()
    hidden_size = _PROPS["hidden_size"]
    direction = _PROPS["direction"]
    layout = _PROPS["layout"]
    activations = _PROPS["activations"]
    activation_alpha = _PROPS["activation_alpha"]
    activation_beta = _PROPS["activation_beta"]
    clip = _PROPS["clip"]
    input_forget = opt_prop_def(IntegerAttr)
    y = result_def()
    y_h = result_def()
    y_c = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = _format(OPTIONAL["lstm"], ("y", "y_h", "y_c"))

    def cell_name(self) -> str:
        return "lstm"

    def infer(self) -> list[Attribute]:
        return self.infer_recurrent(3)


OPS = [RnnOp, LstmOp]
