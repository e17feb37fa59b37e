"""Fused multi-head attention: softmax(scale · Q Kᵀ + mask) V per (batch, head), reading Q, K and V
as column ranges of [B, S, W] row-major projection outputs (one packed tensor or three) and
writing [B, Sq, H·D] — the head split and merge are the kernel's indexing, not data movement."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.errors import ShapeError


def _heads(x: np.ndarray, offset: int, heads: int, dim: int, what: str) -> np.ndarray:
    """Columns offset .. offset + heads·dim of a [B, S, W] tensor as [B, heads, S, dim] float64."""
    if x.ndim != 3 or offset < 0 or offset + heads * dim > x.shape[2]:
        raise ShapeError(f"attention: {what} of shape {list(x.shape)} has no columns "
                         f"{offset}..{offset + heads * dim}")
    cols = x[:, :, offset:offset + heads * dim].astype(np.float64)
    return cols.reshape(x.shape[0], x.shape[1], heads, dim).transpose(0, 2, 1, 3)


def attention(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """inputs: q, k, v (and an optional mask broadcasting to [B, H, Sq, Sk]: a float mask is
    added to the scores, a boolean one keeps the scores where true and puts `masked_value`
    (default -inf) elsewhere). A row whose every score is -inf gives 0."""
    q, k, v = inputs[:3]
    heads, dim = int(params["num_heads"]), int(params["head_dim"])
    qh = _heads(q, int(params.get("q_offset", 0)), heads, dim, "q")
    kh = _heads(k, int(params.get("k_offset", 0)), heads, dim, "k")
    vh = _heads(v, int(params.get("v_offset", 0)), heads, dim, "v")
    scores = np.matmul(qh, kh.swapaxes(-1, -2)) * float(params["scale"])
    with np.errstate(all="ignore"):
        if len(inputs) > 3:
            mask = inputs[3]
            if mask.dtype == np.bool_:
                masked = float(params.get("masked_value", -np.inf))
                scores = np.where(mask, scores, masked)
            else:
                scores = scores + mask.astype(np.float64)
        top = np.max(scores, axis=-1, keepdims=True)
        top = np.where(top == -np.inf, 0.0, top)
        e = np.exp(scores - top)
        total = np.sum(e, axis=-1, keepdims=True)
        out = np.matmul(e, vh) / np.where(total > 0, total, 1.0)
        out = np.where(total > 0, out, 0.0)
    b, sq = q.shape[0], q.shape[1]
    return [np.ascontiguousarray(out.transpose(0, 2, 1, 3).reshape(b, sq, heads * dim)
                                 .astype(q.dtype))]


def attention_chain(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """An attention chain fused into one kernel by fuse-attention-kernels: params["stages"] are
    the kernels it replaced (each {name, template, inputs, params}: their own templates and
    params), run in order; a stage's `inputs` name the chain's operands ("in<i>") or earlier
    stages. The result is the last stage's, so the CPU results are those of the unfused
    kernels, bit for bit."""
    from ember.runtime.cpu_kernels import KERNELS as ALL

    values = {f"in{i}": x for i, x in enumerate(inputs)}
    for stage in params["stages"]:
        args = []
        for name in stage["inputs"]:
            if name not in values:
                raise ShapeError(f"attention_chain: stage '{stage['name']}' reads '{name}', "
                                 "which no operand or earlier stage gives")
            args.append(values[name])
        if stage["template"] not in ALL:
            raise ShapeError(f"attention_chain: stage '{stage['name']}' names no kernel "
                             f"template '{stage['template']}'")
        (values[stage["name"]],) = ALL[stage["template"]](args, stage["params"])
    return [values[params["stages"][-1]["name"]]]


KERNELS = {"attention": attention, "attention_chain": attention_chain}
