"""Recurrent kernels (ONNX RNN, GRU and LSTM, every direction, layout, initial state, sequence
length, activation, clip and peephole): a loop over time steps in float64, each step's input
and recurrent products done as matrix products over the batch.

Operands: X, W, R, then the optional ones present, named in params["optional"] in the order
bias, sequence_lens, initial_h, initial_c (LSTM), peepholes (LSTM). Gates as ONNX orders them:
RNN i; GRU z, r, h; LSTM i, o, f, c. With sequence lengths, a batch row's steps past its length
are not computed: its Y rows there are 0 and its final state is the one at its length; the
reverse direction starts at its last valid step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ember.errors import ShapeError

# ONNX's activation functions by name, with (alpha, beta) defaults where they take them
ACTIVATIONS: dict[str, tuple[int, Callable[..., np.ndarray], tuple[float, ...]]] = {
    "Relu": (0, lambda x: np.maximum(x, 0), ()),
    "Tanh": (0, np.tanh, ()),
    "Sigmoid": (0, lambda x: 1 / (1 + np.exp(-x)), ()),
    "Affine": (2, lambda x, a, b: a * x + b, (1.0, 0.0)),
    "LeakyRelu": (1, lambda x, a: np.where(x >= 0, x, a * x), (0.01,)),
    "ThresholdedRelu": (1, lambda x, a: np.where(x > a, x, 0), (1.0,)),
    "ScaledTanh": (2, lambda x, a, b: a * np.tanh(b * x), (1.0, 1.0)),
    "HardSigmoid": (2, lambda x, a, b: np.clip(a * x + b, 0, 1), (0.2, 0.5)),
    "Elu": (1, lambda x, a: np.where(x >= 0, x, a * (np.exp(x) - 1)), (1.0,)),
    "Softsign": (0, lambda x: x / (1 + np.abs(x)), ()),
    "Softplus": (0, lambda x: np.log1p(np.exp(x)), ()),
}
# activations per direction and their defaults
GATE_FUNCTIONS = {"rnn": 1, "gru": 2, "lstm": 3}
DEFAULT_ACTIVATIONS = {"rnn": ("Tanh",), "gru": ("Sigmoid", "Tanh"),
                       "lstm": ("Sigmoid", "Tanh", "Tanh")}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
DIRECTIONS = ("forward", "reverse", "bidirectional")
OPTIONAL = {"rnn": ("bias", "sequence_lens", "initial_h"),
            "gru": ("bias", "sequence_lens", "initial_h"),
            "lstm": ("bias", "sequence_lens", "initial_h", "initial_c", "peepholes")}


def activation_specs(cell: str, names: list[str] | None, alphas: list[float] | None,
                     betas: list[float] | None, directions: int
                     ) -> list[list[tuple[str, tuple[float, ...]]]]:
    """Per direction, the cell's activations (f for RNN; f, g for GRU; f, g, h for LSTM) as
    (name, its alpha / beta arguments), the arguments taken in order by the functions that use
    them; one direction's list serves both of a bidirectional cell."""
    per = GATE_FUNCTIONS[cell]
    names = list(names) if names else list(DEFAULT_ACTIVATIONS[cell]) * directions
    if len(names) == per and directions == 2:
        names = names * 2
    if len(names) != per * directions:
        raise ShapeError(f"nn.{cell}: {len(names)} activations for {directions} direction(s) "
                         f"(want {per} each)")
    alphas, betas = list(alphas or []), list(betas or [])
    specs: list[tuple[str, tuple[float, ...]]] = []
    for name in names:
        if name not in ACTIVATIONS:
            raise ShapeError(f"nn.{cell}: activation '{name}' (one of {', '.join(ACTIVATIONS)})")
        n, _, defaults = ACTIVATIONS[name]
        args = []
        for k in range(n):
            source = alphas if k == 0 else betas
            args.append(float(source.pop(0)) if source else defaults[k])
        specs.append((name, tuple(args)))
    return [specs[d * per:(d + 1) * per] for d in range(directions)]


def activation_functions(cell: str, names: list[str] | None, alphas: list[float] | None,
                         betas: list[float] | None, directions: int
                         ) -> list[list[Callable[[np.ndarray], np.ndarray]]]:
    """`activation_specs` as functions of one array."""
    return [[lambda x, fn=ACTIVATIONS[name][1], args=args: fn(x, *args) for name, args in row]
            for row in activation_specs(cell, names, alphas, betas, directions)]


def recurrent(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    cell = params["cell"]
    x, w, r = (np.asarray(a) for a in inputs[:3])
    given = dict(zip(params.get("optional") or [], inputs[3:], strict=True))
    hidden = int(params["hidden_size"])
    direction = params.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise ShapeError(f"nn.{cell}: direction '{direction}'")
    dirs = 2 if direction == "bidirectional" else 1
    layout = int(params.get("layout") or 0)
    if layout:
        x = np.swapaxes(x, 0, 1)  # [batch, seq, in] -> [seq, batch, in]
    seq, batch, _ = x.shape
    gates = GATES[cell]
    if w.shape[:2] != (dirs, gates * hidden) or r.shape != (dirs, gates * hidden, hidden):
        raise ShapeError(f"nn.{cell}: W {list(w.shape)} / R {list(r.shape)} do not fit "
                         f"{dirs} direction(s) of hidden size {hidden}")
    f64 = np.float64
    bias = np.asarray(given["bias"], f64) if "bias" in given else \
        np.zeros((dirs, 2 * gates * hidden))
    lens = np.asarray(given["sequence_lens"]).astype(np.int64) if "sequence_lens" in given \
        else np.full(batch, seq, np.int64)
    if lens.shape != (batch,) or (lens < 0).any() or (lens > seq).any():
        raise ShapeError(f"nn.{cell}: sequence_lens {lens.tolist()} for {batch} rows of "
                         f"{seq} steps")

    def state(name: str) -> np.ndarray:
        value = given.get(name)
        if value is None:
            return np.zeros((dirs, batch, hidden))
        value = np.asarray(value, f64)
        return np.swapaxes(value, 0, 1) if layout else value

    h0, c0 = state("initial_h"), state("initial_c")
    peep = np.asarray(given["peepholes"], f64) if "peepholes" in given else \
        np.zeros((dirs, 3 * hidden))
    clip = params.get("clip")
    acts = activation_functions(cell, params.get("activations"), params.get("activation_alpha"),
                                params.get("activation_beta"), dirs)
    y = np.zeros((seq, dirs, batch, hidden))
    y_h = np.zeros((dirs, batch, hidden))
    y_c = np.zeros((dirs, batch, hidden))
    xs = x.astype(f64)
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        wd, rd = w[d].astype(f64), r[d].astype(f64)
        wb, rb = bias[d, : gates * hidden], bias[d, gates * hidden:]
        h, c = h0[d].copy(), c0[d].copy()
        fns = acts[d]
        for t in range(seq):
            # each row's time index: from its last valid step back, in reverse
            index = lens - 1 - t if reverse else np.full(batch, t)
            active = t < lens
            rows = np.clip(index, 0, seq - 1)
            xt = xs[rows, np.arange(batch)]
            pre_x = xt @ wd.T + wb
            h_new, c_new = _cell(cell, pre_x, h, c, rd, rb, peep[d], hidden, fns, clip,
                                 params)
            h = np.where(active[:, None], h_new, h)
            if cell == "lstm":
                c = np.where(active[:, None], c_new, c)
            y[rows[active], d, np.arange(batch)[active]] = h[active]
        y_h[d], y_c[d] = h, c
    dtype = x.dtype
    if layout:
        outs = [np.transpose(y, (2, 0, 1, 3)), np.swapaxes(y_h, 0, 1), np.swapaxes(y_c, 0, 1)]
    else:
        outs = [y, y_h, y_c]
    outs = [np.ascontiguousarray(o.astype(dtype)) for o in outs]
    return outs if cell == "lstm" else outs[:2]


def _cell(cell: str, pre_x: np.ndarray, h: np.ndarray, c: np.ndarray, rd: np.ndarray,
          rb: np.ndarray, peep: np.ndarray, hidden: int, fns: list, clip: float | None,
          params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    def clipped(v: np.ndarray) -> np.ndarray:
        return np.clip(v, -clip, clip) if clip is not None else v

    if cell == "rnn":
        return fns[0](clipped(pre_x + h @ rd.T + rb)), c
    if cell == "gru":
        xz, xr, xh = np.split(pre_x, 3, axis=-1)
        rz, rr, rh = np.split(rd, 3, axis=0)
        bz, br, bh = np.split(rb, 3)
        z = fns[0](clipped(xz + h @ rz.T + bz))
        reset = fns[0](clipped(xr + h @ rr.T + br))
        if params.get("linear_before_reset"):
            cand = fns[1](clipped(xh + reset * (h @ rh.T + bh)))
        else:
            cand = fns[1](clipped(xh + (reset * h) @ rh.T + bh))
        return (1 - z) * cand + z * h, c
    gates = pre_x + h @ rd.T + rb
    gi, go, gf, gc = np.split(gates, 4, axis=-1)
    pi, po, pf = np.split(peep, 3)
    i = fns[0](clipped(gi + pi * c))
    f = 1 - i if params.get("input_forget") else fns[0](clipped(gf + pf * c))
    cand = fns[1](clipped(gc))
    c_new = f * c + i * cand
    o = fns[0](clipped(go + po * c_new))
    return o * fns[2](c_new), c_new


KERNELS = {"rnn": recurrent, "lstm": recurrent}
