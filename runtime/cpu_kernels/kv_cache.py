"""numpy kernel of nn.tensor_scatter (ONNX TensorScatter, the KV-cache update of LLM attention):
the past cache with each batch sample's update written at its write index along the sequence
axis (modulo the cache length in circular mode)."""

from __future__ import annotations

from typing import Any

import numpy as np


def tensor_scatter(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """present = past, then present[b, ..., w[b] + s, ...] = update[b, ..., s, ...] for each
    sequence position s of the update (w: the write indices, zeros when not given; circular
    mode wraps w[b] + s around the cache length, linear mode refuses a write past its end)."""
    past, update = np.asarray(inputs[0]), np.asarray(inputs[1])
    axis = int(params["axis"]) % past.ndim
    length, cache = update.shape[axis], past.shape[axis]
    batch = past.shape[0]
    where = np.asarray(inputs[2]).reshape(-1).astype(np.int64) if len(inputs) > 2 \
        else np.zeros(batch, np.int64)
    if where.size != batch:
        raise ValueError(f"write_indices has {where.size} values for a batch of {batch}")
    circular = params.get("mode") == "circular"
    if not circular and where.size and (where.min() < 0 or where.max() + length > cache):
        raise ValueError(f"a write index in {where.tolist()} puts the {length} updated "
                         f"positions past the cache's {cache} (mode linear)")
    present = past.copy()
    for b in range(batch):
        positions = where[b] + np.arange(length)
        if circular:
            positions %= cache
        # (a view with the sequence axis first: the positions index it alone)
        np.moveaxis(present[b], axis - 1, 0)[positions] = np.moveaxis(update[b], axis - 1, 0)
    return [present]


KERNELS = {"tensor_scatter": tensor_scatter}
