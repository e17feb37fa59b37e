"""The scalar functions of `nn.unary` and `nn.binary`: the tables live with the runtime's numpy
kernels (`ember.runtime.cpu_kernels.functions`); re-exported here for the compiler's imports."""

from __future__ import annotations

from ember.runtime.cpu_kernels.functions import BINARY, MIXED_TYPES, UNARY

__all__ = ["BINARY", "MIXED_TYPES", "UNARY"]
