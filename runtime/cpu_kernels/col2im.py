"""numpy kernel of nn.col2im (ONNX Col2Im, torch's fold): columns of sliding blocks summed back
into an image."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ember.runtime.cpu_kernels.reduction import pool_output_dim


def blocks(image: list[int], block: list[int], strides: list[int], pads: list[int],
           dilations: list[int]) -> list[int]:
    """The number of sliding blocks along each spatial dim (a pooling window's count)."""
    n = len(image)
    return [pool_output_dim(image[d], block[d], strides[d], dilations[d], pads[d], pads[n + d],
                            False, "nn.col2im") for d in range(n)]


def col2im(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """input [N, C * prod(block), L] -> [N, C, *image]: column (c, k) of block l added at the
    image position block l's tap k covers (taps in the pads fall away). The image and block
    shapes are params, or run-time operands after the input (`dynamic`), checked against the
    image shape the plan was built for."""
    x = np.asarray(inputs[0])
    image = [int(v) for v in params["image_shape"]]
    block = params.get("block_shape")
    rest = list(inputs[1:])
    if "dyn_image_shape" in (params.get("dynamic") or []):
        given = [int(v) for v in np.asarray(rest.pop(0)).reshape(-1)]
        if given != image:
            raise ValueError(f"image_shape {given} at run time, where the plan was built for "
                             f"{image}")
    if "dyn_block_shape" in (params.get("dynamic") or []):
        block = [int(v) for v in np.asarray(rest.pop(0)).reshape(-1)]
    block = [int(v) for v in block]
    n = len(image)
    strides, dilations = list(params["strides"]), list(params["dilations"])
    pads = list(params["pads"])
    counts = blocks(image, block, strides, pads, dilations)
    taps = int(np.prod(block))
    if len(block) != n or min(block, default=1) < 1 or x.ndim != 3 or x.shape[1] % taps \
            or x.shape[2] != int(np.prod(counts)) or min(counts, default=1) < 1:
        raise ValueError(f"an input {list(x.shape)} does not fit image {image}, blocks "
                         f"{block}, strides {strides}, pads {pads}, dilations {dilations} "
                         f"({counts} sliding blocks)")
    channels = x.shape[1] // taps
    cols = x.reshape(x.shape[0], channels, *block, *counts)
    out = np.zeros((x.shape[0], channels, *image), x.dtype)
    grid = np.meshgrid(*(np.arange(c) for c in counts), indexing="ij")
    for tap in itertools.product(*(range(k) for k in block)):
        where = [g * strides[d] - pads[d] + tap[d] * dilations[d] for d, g in enumerate(grid)]
        ok = np.ones(counts, bool)
        for d, p in enumerate(where):
            ok &= (p >= 0) & (p < image[d])
        index = (slice(None), slice(None), *(p[ok] for p in where))
        out[index] += cols[(slice(None), slice(None), *tap)][..., ok]
    return [out]


KERNELS = {"col2im": col2im}
