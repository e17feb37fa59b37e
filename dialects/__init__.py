"""ember's dialects: `onnx` (generated from ONNX's schemas), `nn` and `kernel`."""

from __future__ import annotations

from xdsl.context import Context

from ember.dialects import xdsl_fixes  # noqa: F401  (printing/parsing fixes, applied on import)


def ember_context() -> Context:
    """A context with every dialect ember's IR may hold (builtin, func, arith, math, onnx, nn,
    kernel). `onnx` (made from onnx's schemas: ~2 s to import onnx and build) loads at the
    first op of it the context is asked for, so IR below it parses without it."""
    from xdsl.dialects.arith import Arith
    from xdsl.dialects.builtin import Builtin
    from xdsl.dialects.func import Func
    from xdsl.dialects.math import Math

    from ember.dialects.kernel import KERNEL
    from ember.dialects.nn import NN

    ctx = Context()
    for dialect in (Builtin, Func, Arith, Math, NN, KERNEL):
        ctx.load_dialect(dialect)
    ctx.register_dialect("onnx", _onnx)
    return ctx


def _onnx():
    from ember.dialects.onnx import ONNX

    return ONNX
