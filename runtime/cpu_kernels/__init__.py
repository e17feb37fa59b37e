"""numpy implementations of every kernel template: the CPU executor runs plan steps with them,
and the nn ops' `evaluate()` (constant folding, the reference interpreter) calls them too, so each
op's semantics exist once.

`KERNELS[template](inputs, params) -> outputs`: `template` is the nn op's name without "nn."
(plus `elementwise`, a fused scalar region); `params` are the JSON-like data `kernel_params()`
gives (the op's properties, type properties as numpy dtype names, in_shapes / in_dtypes /
out_shapes / out_dtypes; an out_shapes entry may hold None for a dim unknown at compile time).
Run-time parameter operands come as extra inputs after the data input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ember.runtime.cpu_kernels import (
    attention,
    elementwise,
    layout,
    linear,
    movement,
    quant,
    reduction,
)

Kernel = Callable[[list[np.ndarray], dict], list[np.ndarray]]

KERNELS: dict[str, Kernel] = {
    **elementwise.KERNELS,
    **linear.KERNELS,
    **layout.KERNELS,
    **reduction.KERNELS,
    **movement.KERNELS,
    **quant.KERNELS,
    **attention.KERNELS,
}

__all__ = ["KERNELS", "Kernel"]
