"""Symbolic sizes in a plan: dims that the inputs' shapes fix at run time.

A plan built with an optimization profile keeps each input dim whose min and max differ as a
symbol (its manifest's "symbols": name -> [min, opt, max]). A dim in a manifest is then an int or
a monomial string, "c*a*b" (a constant times symbols, as shape inference writes products); a
kernel's launch dimensions are expressions over them, as JSON: an int, a monomial string, or
[op, a, b] with op one of + * // % cdiv min max. Everything here only reads data: a malformed
expression is a PlanError, never evaluated as code. The arithmetic of dims (product, exact
quotient, value at a binding or at the profile's bounds) is formed here and nowhere else; codegen's
`Sym` multiplies and divides its terms with `monomial_product`/`monomial_quotient`. Imports: the
standard library only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ember.errors import PlanError, SymbolicError

SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]{1,18}")
_OPS = ("+", "*", "//", "%", "cdiv", "min", "max")
_MAX_DEPTH = 32
_LIMIT = 1 << 62
MIN, OPT, MAX = 0, 1, 2  # positions in a symbol's [min, opt, max]
Monomial = tuple[int, tuple[Any, ...]]


def dim_factors(dim: int | str) -> tuple[int, list[str]]:
    """A dim as (constant, symbols in order): 12 -> (12, []), "768*N" -> (768, ["N"]),
    "N*S" -> (1, ["N", "S"]). The one parser of monomial dims; every layer reads them here."""
    if not isinstance(dim, str):
        return operator.index(dim), []  # an int (a numpy integer too)
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
    const, names = _product(shape)
    return const, list(names) if const else []


# -- arithmetic -----------------------------------------------------------------------------------
# A monomial is (constant, factors in order). A dim's factors are its symbol names; codegen's `Sym`
# also has factors that are run-time expressions (a quotient, a min), ordered by a key it gives.

def monomial_product(a: Monomial, b: Monomial,
                     key: Callable[[Any], Any] | None = None) -> Monomial:
    """a * b: the constants multiplied, the factors merged in `key` order."""
    return a[0] * b[0], tuple(sorted(a[1] + b[1], key=key))


def monomial_quotient(a: Monomial, b: Monomial) -> Monomial | None:
    """a / b where it is exact: b's constant divides a's and each factor of b (as often as it
    occurs) is one of a's; else None. Exact means for every value of the symbols, so N / N is 1
    but 0 / N is None (a factor of N is missing)."""
    if b[0] == 0 or a[0] % b[0]:
        return None
    rest = list(a[1])
    for factor in b[1]:
        if factor not in rest:
            return None
        rest.remove(factor)
    return a[0] // b[0], tuple(rest)


def monomial_dim(monomial: tuple[int, Iterable[str]]) -> int | str:
    """A monomial over symbol names as the canonical dim: an int where no symbol is left (or the
    constant is 0), else "c*a*b" with the symbols sorted and a constant of 1 left out."""
    const, names = monomial[0], sorted(monomial[1])
    if not names or const == 0:
        return const
    return "*".join(([str(const)] if const != 1 else []) + names)


def _product(dims: Iterable[int | str]) -> Monomial:
    out: Monomial = (1, ())
    for d in dims:
        const, names = dim_factors(d)
        out = monomial_product(out, (const, tuple(names)))
    return out


def dim_product(dims: Iterable[int | str]) -> int | str:
    """The product of dims as the canonical dim: [768, "N"] -> "768*N", ["S", "2*N", 3] ->
    "6*N*S", [4, 6] -> 24."""
    return monomial_dim(_product(dims))


def dim_quotient(total: int | str, part: int | str) -> int | str:
    """total / part as the canonical dim where part divides total for every value of the
    symbols ("768*N" / 4 -> "192*N", "N*S" / "S" -> "N"); else a SymbolicError naming both."""
    const, names = dim_factors(total)
    divisor, divisor_names = dim_factors(part)
    quotient = monomial_quotient((const, tuple(names)), (divisor, tuple(divisor_names)))
    if quotient is None:
        raise SymbolicError(f"the dim {total!r} is not a multiple of {part!r} for every value "
                            "of its symbols")
    return monomial_dim(quotient)


def profile_values(ranges: Mapping[str, Sequence[int]], which: int) -> dict[str, int]:
    """Each symbol at its profile's min, opt or max (`which`: MIN, OPT or MAX); `ranges`:
    symbol -> [min, opt, max], as a manifest's "symbols"."""
    return {name: r[which] for name, r in ranges.items()}


def dim_bounds(dim: int | str, ranges: Mapping[str, Sequence[int]]) -> tuple[int, int]:
    """The least and greatest value of a dim over the profile's ranges: its value at the
    symbols' mins and at their maxes (a monomial grows with each of its symbols)."""
    missing = [s for s in dim_symbols(dim) if s not in ranges]
    if missing:
        raise SymbolicError(f"no profile range for symbol(s) {missing} of the dim {dim!r}")
    return dim_value(dim, profile_values(ranges, MIN)), dim_value(dim, profile_values(ranges, MAX))


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


def bind_data_symbols(step: Mapping[str, Any], results: Sequence[Any],
                      values: dict[str, int], ranges: Mapping[str, Sequence[int]],
                      constraints: Sequence[Sequence[Any]], what: str,
                      error: type[Exception]) -> None:
    """Set the data-dependent symbols a step binds (its "binds": symbol -> [result, axis])
    from the shapes of its `results` in `values`; then check the plan's [dim, size]
    constraints that name them. A length past the symbol's bound (the memory planned for it)
    is `error` naming the step."""
    for name, (k, axis) in step.get("binds", {}).items():
        shape = getattr(results[k], "shape", ()) if k < len(results) else ()
        if not 0 <= axis < len(shape):
            raise error(f"{what}: result #{k} has shape {list(shape)}, with no dim {axis} to "
                        f"give '{name}'")
        length, bound = int(shape[axis]), int(ranges[name][2])
        if length > bound:
            raise error(f"{what}: its result's length {length} ('{name}') is more than the "
                        f"{bound} the plan was built for")
        values[name] = length
    bound_now = set(step.get("binds", {}))
    for dim, size in constraints:
        names = dim_symbols(dim)
        if bound_now & set(names) and all(n in values for n in names) \
                and dim_value(dim, values) != size:
            raise error(f"{what}: '{dim}' is {dim_value(dim, values)}, but the model "
                        f"broadcasts it against a dim of {size}: it must be {size}")
