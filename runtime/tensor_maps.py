"""Tensor maps: the descriptors Hopper's bulk tensor copy engine (TMA) reads a tile through.

A kernel whose main loop is fed by `cp.async.bulk.tensor` takes one 128-byte tensor map per
operand as a `__grid_constant__` argument (after its pointers and workspace, before its sizes).
A map holds the operand's device address, so the runtime encodes it (`cuTensorMapEncodeTiled`)
for the address the operand has: when the launch is made, and again where that address changes
(an I/O tensor bound to the caller's memory). The plan records what to encode, per launch: the
`TensorMap`s below, in the kernel's argument order.

A `TensorMap` is two-dimensional (rows of `dims[0]` elements, `dims[1]` rows, `row_bytes`
apart), copied in boxes of `box[0]` x `box[1]` elements into 128-byte-swizzled shared memory
(the layout the wgmma descriptors name); out-of-range elements land as zeros. An `Im2colMap`
(`cuTensorMapEncodeIm2col`) reads an NHWC activation as a convolution's implicit-GEMM rows: one
copy brings `pixels` consecutive output pixels' input at one filter tap, `channels` channels
each, into the same swizzled rows; padding and the image edges land as zeros.

Imports: numpy, the standard library, ember.errors and ember.runtime.cuda (DESIGN §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ember.errors import CudaError, PlanError

# element type name -> bytes; the map's data type is the unsigned integer of that size (the
# copy moves bits: halves as u16, int8 as u8)
ELEMENT_BYTES = {"u8": 1, "u16": 2, "u32": 4}
SWIZZLE_BYTES = 128  # a box row is one 128-byte swizzle row
MAP_BYTES = 128      # sizeof(CUtensorMap)


@dataclass(frozen=True)
class TensorMap:
    """How one kernel argument's tensor map is encoded: over the step's buffer `operand`
    (an index into its inputs then outputs), `dims` = (elements per row, rows), rows
    `row_bytes` apart, copied `box` = (elements, rows) at a time."""

    operand: int
    dtype: str
    dims: tuple[int, int]
    row_bytes: int
    box: tuple[int, int]

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(f"tensor map {self.to_json()}: {problem}")

    def problem(self) -> str | None:
        """Why the copy engine cannot take this map, or None."""
        size = ELEMENT_BYTES.get(self.dtype)
        if size is None:
            return f"element type {self.dtype!r} is not one of {', '.join(ELEMENT_BYTES)}"
        if not all(1 <= d <= 2**32 for d in self.dims):
            return "each dim must be 1 to 2^32"
        if self.row_bytes % 16 or self.row_bytes < self.dims[0] * size \
                or self.row_bytes >= 2**40:
            return "rows must lie a multiple of 16 bytes apart, no closer than a row's bytes"
        if self.box[0] * size != SWIZZLE_BYTES or not 1 <= self.box[1] <= 256:
            return f"a box is one {SWIZZLE_BYTES}-byte row wide and 1 to 256 rows tall"
        return None

    def reach(self) -> int:
        """The bytes from the map's address to the end of its last row."""
        return (self.dims[1] - 1) * self.row_bytes + self.dims[0] * ELEMENT_BYTES[self.dtype]

    def to_json(self) -> dict[str, Any]:
        return {"operand": self.operand, "dtype": self.dtype, "dims": list(self.dims),
                "row_bytes": self.row_bytes, "box": list(self.box)}

    @staticmethod
    def from_json(data: Any, what: str) -> TensorMap | Im2colMap:
        """A `TensorMap`, or an `Im2colMap` where `data` has its `im2col` key."""
        if isinstance(data, Mapping) and "im2col" in data:
            return Im2colMap.from_json(data, what)
        keys = ("operand", "dtype", "dims", "row_bytes", "box")
        if not isinstance(data, Mapping) or set(data) != set(keys):
            raise PlanError(f"manifest: {what} must be an object with keys {', '.join(keys)}")

        operand, row_bytes = data["operand"], data["row_bytes"]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                   for x in (operand, row_bytes)):
            raise PlanError(f"manifest: {what}: operand and row_bytes must be integers >= 0")
        try:
            return TensorMap(operand, str(data["dtype"]), _ints(data["dims"], 2, what),  # type: ignore[arg-type]
                             row_bytes, _ints(data["box"], 2, what))  # type: ignore[arg-type]
        except ValueError as e:
            raise PlanError(f"manifest: {what}: {e}") from None


def _ints(v: Any, n: int, what: str) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) != n or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise PlanError(f"manifest: {what}: {v!r} is not a list of {n} integers")
    return tuple(v)


@dataclass(frozen=True)
class Im2colMap:
    """An im2col map over the step's 2-byte NHWC buffer `operand`: `dims` = (C, W, H, N),
    `strides` = the bytes between consecutive W, H and N; the output pixels' windows start at
    `lower` = (w, h) from the image's first pixel (minus the padding) and the last starts at
    `upper` = (w, h) from its last (the padding after, less the filter's reach); `traversal`
    = the conv's (w, h) strides; a copy brings `pixels` pixels x `channels` channels."""

    operand: int
    dims: tuple[int, int, int, int]
    strides: tuple[int, int, int]
    lower: tuple[int, int]
    upper: tuple[int, int]
    traversal: tuple[int, int]
    channels: int
    pixels: int

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(f"im2col tensor map {self.to_json()}: {problem}")

    def problem(self) -> str | None:
        """Why the copy engine cannot take this map, or None."""
        if not all(1 <= d <= 2**32 for d in self.dims):
            return "each dim must be 1 to 2^32"
        if any(s % 16 or not 0 < s < 2**40 for s in self.strides) \
                or self.strides[0] < self.dims[0] * 2:
            return "pixels must lie a multiple of 16 bytes apart, no closer than their channels"
        if not all(-128 <= c <= 127 for c in (*self.lower, *self.upper)):
            return "the window corners must lie within -128 to 127 (a 4-d map's range)"
        if any(d + up - lo < 1 for d, lo, up in zip(self.dims[1:3], self.lower, self.upper,
                                                    strict=True)):
            return "the windows' corners must span at least one pixel in W and H"
        if not all(1 <= t <= 8 for t in self.traversal):
            return "the traversal strides must be 1 to 8"
        if self.channels * 2 != SWIZZLE_BYTES or not 1 <= self.pixels <= 256:
            return (f"a copy is {SWIZZLE_BYTES // 2} channels (one {SWIZZLE_BYTES}-byte row) "
                    "wide and 1 to 256 pixels tall")
        return None

    def reach(self) -> int:
        """The bytes from the map's address to the end of its last pixel."""
        return sum((d - 1) * s for d, s in zip(self.dims[1:], self.strides, strict=True)) \
            + self.dims[0] * 2

    def to_json(self) -> dict[str, Any]:
        return {"im2col": True, "operand": self.operand, "dims": list(self.dims),
                "strides": list(self.strides), "lower": list(self.lower),
                "upper": list(self.upper), "traversal": list(self.traversal),
                "channels": self.channels, "pixels": self.pixels}

    @staticmethod
    def from_json(data: Any, what: str) -> Im2colMap:
        keys = ("im2col", "operand", "dims", "strides", "lower", "upper", "traversal",
                "channels", "pixels")
        if not isinstance(data, Mapping) or set(data) != set(keys) or data["im2col"] is not True:
            raise PlanError(f"manifest: {what} must be an object with keys {', '.join(keys)}")
        scalars = (data["operand"], data["channels"], data["pixels"])
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in scalars):
            raise PlanError(f"manifest: {what}: operand, channels and pixels must be integers "
                            ">= 0")
        try:
            return Im2colMap(data["operand"], _ints(data["dims"], 4, what),  # type: ignore[arg-type]
                             _ints(data["strides"], 3, what),  # type: ignore[arg-type]
                             _ints(data["lower"], 2, what),  # type: ignore[arg-type]
                             _ints(data["upper"], 2, what),  # type: ignore[arg-type]
                             _ints(data["traversal"], 2, what),  # type: ignore[arg-type]
                             data["channels"], data["pixels"])
        except ValueError as e:
            raise PlanError(f"manifest: {what}: {e}") from None


def encode(tmap: TensorMap | Im2colMap, address: int, what: str) -> np.ndarray:
    """The 128 bytes of `tmap` over device `address` (16 uint64), as a kernel argument takes
    them. A CudaError names `what` where the driver refuses."""
    from ember.runtime import cuda

    cu = cuda.cu
    if address % 16:
        raise CudaError(f"{what}: the tensor map's address {address:#x} is not 16-byte aligned")
    modes = (cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
             cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
             cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    if isinstance(tmap, Im2colMap):
        # the map's dims innermost first (C, W, H, N), and so its corners and strides (W, H)
        result = cu.cuTensorMapEncodeIm2col(
            cu.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, address,
            [cu.cuuint64_t(d) for d in tmap.dims], [cu.cuuint64_t(s) for s in tmap.strides],
            list(tmap.lower), list(tmap.upper), tmap.channels, tmap.pixels,
            [cu.cuuint32_t(s) for s in (1, *tmap.traversal, 1)], *modes)
        encoded = cuda.check(result, f"{what}: cuTensorMapEncodeIm2col {tmap.to_json()}")
    else:
        dtype = getattr(cu.CUtensorMapDataType,
                        {"u8": "CU_TENSOR_MAP_DATA_TYPE_UINT8",
                         "u16": "CU_TENSOR_MAP_DATA_TYPE_UINT16",
                         "u32": "CU_TENSOR_MAP_DATA_TYPE_UINT32"}[tmap.dtype])
        result = cu.cuTensorMapEncodeTiled(
            dtype, 2, address, [cu.cuuint64_t(d) for d in tmap.dims],
            [cu.cuuint64_t(tmap.row_bytes)], [cu.cuuint32_t(b) for b in tmap.box],
            [cu.cuuint32_t(1), cu.cuuint32_t(1)], *modes)
        encoded = cuda.check(result, f"{what}: cuTensorMapEncodeTiled {tmap.to_json()}")
    words = np.array([int(w) for w in encoded.opaque], dtype=np.uint64)
    if words.nbytes != MAP_BYTES:
        raise CudaError(f"{what}: a tensor map of {words.nbytes} bytes (expected {MAP_BYTES})")
    return words


def arguments(maps: Sequence[TensorMap | Im2colMap], pointers: list[int], what: str
              ) -> list[tuple[str, np.ndarray]]:
    """The ("tmap", words) kernel arguments of `maps` over the launch's operand `pointers`
    (its inputs then outputs), for `ember.runtime.cuda.pack_args` after the pointers."""
    return [("tmap", encode(t, pointers[t.operand], f"{what}: tensor map #{i}"))
            for i, t in enumerate(maps)]


__all__ = ["Im2colMap", "TensorMap", "arguments", "encode"]
