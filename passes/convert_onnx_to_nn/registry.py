"""The table of legalizers: ONNX op type -> function that builds the nn ops for one node."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.ir import SSAValue

from ember.dialects.onnx import OnnxOp

# A legalizer gets a builder (inserting before the node) and the node; it returns one value per
# ONNX output of the node (None for an output nothing uses or the node did not produce).
Legalizer = Callable[["NNBuilder", OnnxOp], Sequence[SSAValue | None]]  # noqa: F821
LEGALIZERS: dict[str, Legalizer] = {}


def legalizes(*onnx_types: str) -> Callable[[Legalizer], Legalizer]:
    def register(fn: Legalizer) -> Legalizer:
        for t in onnx_types:
            if t in LEGALIZERS:
                raise ValueError(f"two legalizers for ONNX op {t}")
            LEGALIZERS[t] = fn
        return fn
    return register
