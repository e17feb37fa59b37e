"""What the templates share for float16 / bfloat16, on top of `ember.codegen.scalar_c`'s storage
types and conversions: halves are stored as 2-byte structs and computed in float, so a template
writes `stored(expr)` where it assigns a computed value to an element, and keeps its float32 /
float64 text unchanged otherwise."""

from __future__ import annotations

from ember.codegen.scalar_c import (
    c_literal,
    c_type,
    is_half,
    store_from_float,
    stored_in_float,
)


def is_float(dtype: str) -> bool:
    """float32, float64, float16 or bfloat16."""
    return dtype in ("float32", "float64") or is_half(dtype)


def stored(value: str, dtype: str) -> str:
    """What to assign to a `dtype` element from computed `value`: converted (round to nearest
    even) for a half or E4M3, `value` itself otherwise (C converts on assignment)."""
    return store_from_float(value, dtype) if stored_in_float(dtype) else value


def cast_to(value: str, dtype: str) -> str:
    """Computed `value` as a stored `dtype` element: converted for a half or E4M3, `(T)value`
    otherwise (parenthesize `value` unless it is one term)."""
    return store_from_float(value, dtype) if stored_in_float(dtype) else f"({c_type(dtype)}){value}"


def compute_literal(value: float, dtype: str) -> str:
    """A literal of `value` in the type `dtype` is computed in (float for a half, not rounded to
    the half: the reference computes with it in float64)."""
    return c_literal(value, "float32" if stored_in_float(dtype) else dtype)


def zero(dtype: str) -> str:
    """A stored zero of `dtype` (`({T})0`, or the half's or E4M3's zero bits)."""
    return store_from_float("0.0f", dtype) if stored_in_float(dtype) else f"({c_type(dtype)})0"
