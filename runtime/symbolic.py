"""Symbolic sizes in a plan: dims that the inputs' shapes fix at run time.

A plan built with an optimization profile keeps each input dim whose min and max differ as a
symbol (its manifest's "symbols": name -> [min, opt, max]). A dim in a manifest is then an int or
a monomial string, "c*a*b" (a constant times symbols, as shape inference writes products); a
kernel's launch dimensions are expressions over them, as JSON: an int, a monomial string, or
[op, a, b] with op one of + * // % cdiv min max. Everything here only reads data: a malformed
expression is a PlanError, never evaluated as code. Imports: the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ember.errors import PlanError, SymbolicError

SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]{1,18}")
_OPS = ("+", "*", "//", "%", "cdiv", "min", "max")
_MAX_DEPTH = 32
_LIMIT = 1 << 62


def dim_factors(dim: int | str) -> tuple[int, list[str]]:
    """A dim as (constant, symbols in order): 12 -> (12, []), "768*N" -> (768, ["N"]),
    "N*S" -> (1, ["N", "S"]). The one parser of monomial dims; every layer reads them here."""
    if isinstance(dim, int):
        return dim, []
    const, names = 1, []
    for part in dim.split("*"):
        if _DIGITS.fullmatch(part):
            const *= int(part)
        else:
            names.append(part)
    return const, names


def dim_symbols(dim: int | str) -> list[str]:
    """The symbols a dim names ("768*N" -> ["N"]; none for an int)."""
    return dim_factors(dim)[1]


def is_monomial_over(dim: int | str, symbols: Any) -> bool:
    """Whether a dim is an int or a product of a constant and symbols all in `symbols`."""
    return all(SYMBOL.fullmatch(p) and p in symbols for p in dim_symbols(dim))


def check_dim(dim: Any, symbols: Mapping[str, Any], what: str) -> None:
    """A dim is an int ≥ 0 or a monomial over declared symbols."""
    if isinstance(dim, int) and not isinstance(dim, bool):
        if dim < 0:
            raise PlanError(f"manifest: {what} has a negative dim {dim}")
        return
    if not isinstance(dim, str) or not dim or len(dim) > 256:
        raise PlanError(f"manifest: {what} has a bad dim {dim!r}")
    for part in dim_symbols(dim):
        if not SYMBOL.fullmatch(part) or part not in symbols:
            raise PlanError(f"manifest: {what} names an unknown symbol {part!r} in dim {dim!r}")


def dim_value(dim: int | str, values: Mapping[str, int]) -> int:
    """A dim's value once the symbols are bound (`values`: symbol -> int)."""
    const, names = dim_factors(dim)
    for name in names:
        const *= values[name]
    return const


def shape_value(shape: Sequence[int | str], values: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(dim_value(d, values) for d in shape)


def size_form(shape: Sequence[int | str]) -> tuple[int, list[str]]:
    """A shape's element count as (constant, sorted symbols): two shapes hold as many elements
    at every binding of the symbols exactly when these are equal."""
    const, names = 1, []
    for d in shape:
        c, symbols = dim_factors(d)
        const *= c
        names += symbols
    return const, sorted(names) if const else []


def check_expr(expr: Any, symbols: Mapping[str, Any], what: str, depth: int = 0) -> None:
    """A launch-dimension expression (see the module docstring)."""
    if depth > _MAX_DEPTH:
        raise PlanError(f"manifest: {what} nests too deep")
    if isinstance(expr, list):
        if len(expr) != 3 or expr[0] not in _OPS:
            raise PlanError(f"manifest: {what} has a bad expression {expr!r}")
        for arg in expr[1:]:
            check_expr(arg, symbols, what, depth + 1)
        return
    if isinstance(expr, int) and not isinstance(expr, bool):
        if abs(expr) >= _LIMIT:
            raise PlanError(f"manifest: {what} has an out-of-range constant")
        return
    check_dim(expr, symbols, what)


def expr_value(expr: Any, values: Mapping[str, int]) -> int:
    """An expression checked by `check_expr`, evaluated (Python's floor division)."""
    if isinstance(expr, list):
        op, a, b = expr[0], expr_value(expr[1], values), expr_value(expr[2], values)
        if op in ("//", "%", "cdiv") and b == 0:
            raise PlanError(f"manifest: division by zero in {expr!r}")
        if op == "+":
            out = a + b
        elif op == "*":
            out = a * b
        elif op == "//":
            out = a // b
        elif op == "%":
            out = a % b
        elif op == "cdiv":
            out = -(-a // b)
        elif op == "min":
            out = min(a, b)
        else:
            out = max(a, b)
        if abs(out) >= _LIMIT:
            raise PlanError(f"manifest: {expr!r} overflows")
        return out
    return dim_value(expr, values)


def expr_text(expr: Any) -> str:
    """An expression as text: 8, "4*N", "min(cdiv(4*N, 256), 65536)"."""
    if isinstance(expr, list) and len(expr) == 3:
        a, b = expr_text(expr[1]), expr_text(expr[2])
        return f"({a} {expr[0]} {b})" if expr[0] in ("+", "*", "//", "%") else \
            f"{expr[0]}({a}, {b})"
    return str(expr)


def expr_from_text(text: str) -> Any:
    """`expr_text`'s output read back into an expression: "min(cdiv(4*N, 256), 65536)" ->
    ["min", ["cdiv", "4*N", 256], 65536]. Malformed text is a SymbolicError naming it."""
    expr, end = _read_expr(text, 0, text)
    if end != len(text):
        raise SymbolicError(f"launch expression {text!r}: unexpected text at {end}")
    return expr


_FUNCTIONS = ("min", "max", "cdiv")
_INFIX = (" + ", " * ", " // ", " % ")


def _read_expr(text: str, at: int, whole: str, depth: int = 0) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise SymbolicError(f"launch expression {whole!r} nests too deep")
    if text.startswith("(", at):
        a, at = _read_expr(text, at + 1, whole, depth + 1)
        infix = next((o for o in _INFIX if text.startswith(o, at)), None)
        if infix is None:
            raise SymbolicError(f"launch expression {whole!r}: expected an operator at {at}")
        b, at = _read_expr(text, at + len(infix), whole, depth + 1)
        if not text.startswith(")", at):
            raise SymbolicError(f"launch expression {whole!r}: expected ')' at {at}")
        return [infix.strip(), a, b], at + 1
    fn = next((f for f in _FUNCTIONS if text.startswith(f + "(", at)), None)
    if fn is not None:
        a, at = _read_expr(text, at + len(fn) + 1, whole, depth + 1)
        if not text.startswith(", ", at):
            raise SymbolicError(f"launch expression {whole!r}: expected ', ' at {at}")
        b, at = _read_expr(text, at + 2, whole, depth + 1)
        if not text.startswith(")", at):
            raise SymbolicError(f"launch expression {whole!r}: expected ')' at {at}")
        return [fn, a, b], at + 1
    end = at
    while end < len(text) and (text[end].isascii() and (text[end].isalnum() or text[end] in "_*")):
        end += 1
    atom = text[at:end]
    if not atom:
        raise SymbolicError(f"launch expression {whole!r}: expected a size at {at}")
    return (int(atom) if atom.isdigit() else atom), end


def substitute_shapes(params: Mapping[str, Any], values: Mapping[str, int]) -> dict[str, Any]:
    """A step's params with the symbolic dims of its shapes (in_shapes, out_shapes and an
    epilogue's in_shapes) made concrete; everything else as it was."""
    out = dict(params)
    for key in ("in_shapes", "out_shapes"):
        if key in out:
            out[key] = [None if s is None else list(shape_value(s, values)) for s in out[key]]
    epilogue = out.get("epilogue")
    if isinstance(epilogue, Mapping) and "in_shapes" in epilogue:
        out["epilogue"] = {**epilogue, "in_shapes": [list(shape_value(s, values))
                                                     for s in epilogue["in_shapes"]]}
    return out


def params_symbolic(params: Mapping[str, Any]) -> bool:
    """Whether a step's shapes hold a symbolic dim."""
    shapes = [*params.get("in_shapes", []), *params.get("out_shapes", [])]
    epilogue = params.get("epilogue")
    if isinstance(epilogue, Mapping):
        shapes += epilogue.get("in_shapes", [])
    return any(isinstance(d, str) for s in shapes if s for d in s)


def symbol_values(specs: Sequence[tuple[str, Sequence[int | str]]],
                 shapes: Mapping[str, Sequence[int]], symbols: Mapping[str, Sequence[int]],
                 error: type[Exception]) -> dict[str, int]:
    """Symbol values from the inputs' actual shapes. `specs`: (input name, manifest shape);
    `symbols`: name -> [min, opt, max]. Raises `error` naming the input and dim where a shape
    does not fit: a static dim that differs, a symbol out of its profile's range, or one symbol
    given two values."""
    values: dict[str, int] = {}
    for name, spec in specs:
        actual = tuple(shapes[name])
        if len(actual) != len(spec):
            raise error(f"input '{name}': expected rank {len(spec)} (shape "
                        f"{_show(spec, symbols)}), got shape {list(actual)}")
        for axis, (want, got) in enumerate(zip(spec, actual, strict=True)):
            if isinstance(want, int):
                if want != got:
                    raise error(f"input '{name}': expected shape {_show(spec, symbols)}, got "
                                f"{list(actual)} (dim {axis} must be {want})")
                continue
            if want not in symbols:  # a product: checked once every plain symbol is bound
                continue
            lo, _, hi = symbols[want]
            if not lo <= got <= hi:
                raise error(f"input '{name}': dim {axis} ('{want}') is {got}, outside the "
                            f"optimization profile's range [{lo}, {hi}]")
            if values.setdefault(want, got) != got:
                raise error(f"input '{name}': dim {axis} ('{want}') is {got}, but another "
                            f"input gives '{want}' = {values[want]}")
    missing = [s for s in symbols if s not in values]
    if missing:
        raise error(f"symbol(s) {', '.join(missing)} are not given by any input's shape")
    for name, spec in specs:
        actual = tuple(shapes[name])
        for axis, (want, got) in enumerate(zip(spec, actual, strict=True)):
            if isinstance(want, str) and want not in symbols and dim_value(want, values) != got:
                raise error(f"input '{name}': dim {axis} must be {want} = "
                            f"{dim_value(want, values)}, got {got}")
    return values


def _show(spec: Sequence[int | str], symbols: Mapping[str, Sequence[int]]) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else
                           f"{d}∈[{symbols[d][0]}, {symbols[d][2]}]" if d in symbols else str(d)
                           for d in spec) + "]"
