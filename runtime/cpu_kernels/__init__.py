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

from ember.runtime import plugins
from ember.runtime.cpu_kernels import (
    assertion,
    attention,
    bilinear,
    col2im,
    data_dependent,
    elementwise,
    kv_cache,
    layout,
    linear,
    movement,
    quant,
    recurrent,
    reduction,
    sampling,
    unpool,
)

Kernel = Callable[[list[np.ndarray], dict], list[np.ndarray]]

KERNELS: dict[str, Kernel] = {
    **elementwise.KERNELS,
    **linear.KERNELS,
    **layout.KERNELS,
    **reduction.KERNELS,
    **movement.KERNELS,
    **sampling.KERNELS,
    **recurrent.KERNELS,
    **quant.KERNELS,
    **bilinear.KERNELS,
    **col2im.KERNELS,
    **kv_cache.KERNELS,
    **unpool.KERNELS,
    **assertion.KERNELS,
    **attention.KERNELS,
    **data_dependent.KERNELS,
    **plugins.KERNELS,  # a plugin step: its numpy reference, registered by the process
}



def call(template: str, args: list[np.ndarray], params: dict, what: str,
         error: type[Exception]) -> list[np.ndarray]:
    """Run one template's numpy semantics; numpy failing inside it becomes `error` naming the
    step (`what`). Both executors (the CPU one, and host steps inside GPU plans) go through
    here."""
    from ember.errors import EmberError

    try:
        return KERNELS[template](args, params)
    except EmberError:
        raise
    except Exception as e:
        raise error(f"{what}: {type(e).__name__}: {e}") from e


def fitted(value: np.ndarray, shape: tuple, params: dict, what: str,
           error: type[Exception]) -> np.ndarray:
    """A step's result in its planned buffer shape. A kernel may give the same elements in
    another shape (a layout's logical view); a step whose run-time parameters (params
    "dynamic") give another shape than the build planned is an error naming it."""
    value = np.asarray(value)
    if value.shape == tuple(shape):
        return value
    if params.get("dynamic") or value.size != int(np.prod(shape, dtype=np.int64)):
        raise error(f"{what}: the result has shape {list(value.shape)} where the plan has "
                    f"{list(shape)}" + (" (its run-time parameters "
                                        f"{', '.join(params['dynamic'])} give another shape "
                                        "than the build's)" if params.get("dynamic") else ""))
    return value.reshape(shape)


__all__ = ["KERNELS", "Kernel", "call", "fitted"]
