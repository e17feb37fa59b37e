"""Tensor maps: the descriptors Hopper's bulk tensor copy engine (TMA) reads a tile through.

A kernel whose main loop is fed by `cp.async.bulk.tensor` takes one 128-byte tensor map per
operand as a `__grid_constant__` argument (after its pointers and workspace, before its sizes).
A map holds the operand's device address, so the runtime encodes it (`cuTensorMapEncodeTiled`)
for the address the operand has: when the launch is made, and again where that address changes
(an I/O tensor bound to the caller's memory). The plan records what to encode, per launch: the
`TensorMap`s below, in the kernel's argument order.

Every map here is two-dimensional (rows of `dims[0]` elements, `dims[1]` rows, `row_bytes`
apart), copied in boxes of `box[0]` x `box[1]` elements into 128-byte-swizzled shared memory
(the layout the wgmma descriptors name); out-of-range elements land as zeros.

Imports: numpy, the standard library, ember.errors and ember.runtime.cuda (DESIGN §5).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    def from_json(data: Any, what: str) -> TensorMap:
        keys = ("operand", "dtype", "dims", "row_bytes", "box")
        if not isinstance(data, Mapping) or set(data) != set(keys):
            raise PlanError(f"manifest: {what} must be an object with keys {', '.join(keys)}")

        def ints(v: Any, n: int) -> tuple[int, ...]:
            if not isinstance(v, list) or len(v) != n or not all(
                    isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise PlanError(f"manifest: {what}: {v!r} is not a list of {n} integers")
            return tuple(v)

        operand, row_bytes = data["operand"], data["row_bytes"]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                   for x in (operand, row_bytes)):
            raise PlanError(f"manifest: {what}: operand and row_bytes must be integers >= 0")
        try:
            return TensorMap(operand, str(data["dtype"]), ints(data["dims"], 2),  # type: ignore[arg-type]
                             row_bytes, ints(data["box"], 2))  # type: ignore[arg-type]
        except ValueError as e:
            raise PlanError(f"manifest: {what}: {e}") from None


def encode(tmap: TensorMap, address: int, what: str) -> np.ndarray:
    """The 128 bytes of `tmap` over device `address` (16 uint64), as a kernel argument takes
    them. A CudaError names `what` where the driver refuses."""
    from ember.runtime import cuda

    cu = cuda.cu
    if address % 16:
        raise CudaError(f"{what}: the tensor map's address {address:#x} is not 16-byte aligned")
    dtype = getattr(cu.CUtensorMapDataType,
                    {"u8": "CU_TENSOR_MAP_DATA_TYPE_UINT8", "u16": "CU_TENSOR_MAP_DATA_TYPE_UINT16",
                     "u32": "CU_TENSOR_MAP_DATA_TYPE_UINT32"}[tmap.dtype])
    result = cu.cuTensorMapEncodeTiled(
        dtype, 2, address, [cu.cuuint64_t(d) for d in tmap.dims],
        [cu.cuuint64_t(tmap.row_bytes)], [cu.cuuint32_t(b) for b in tmap.box],
        [cu.cuuint32_t(1), cu.cuuint32_t(1)],
        cu.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        cu.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
        cu.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        cu.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    encoded = cuda.check(result, f"{what}: cuTensorMapEncodeTiled {tmap.to_json()}")
    words = np.array([int(w) for w in encoded.opaque], dtype=np.uint64)
    if words.nbytes != MAP_BYTES:
        raise CudaError(f"{what}: a tensor map of {words.nbytes} bytes (expected {MAP_BYTES})")
    return words


def arguments(maps: tuple[TensorMap, ...] | list[TensorMap], pointers: list[int], what: str
              ) -> list[tuple[str, np.ndarray]]:
    """The ("tmap", words) kernel arguments of `maps` over the launch's operand `pointers`
    (its inputs then outputs), for `ember.runtime.cuda.pack_args` after the pointers."""
    return [("tmap", encode(t, pointers[t.operand], f"{what}: tensor map #{i}"))
            for i, t in enumerate(maps)]


__all__ = ["TensorMap", "arguments", "encode"]
