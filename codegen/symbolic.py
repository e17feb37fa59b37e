"""Symbolic sizes for the kernel templates: `Sym`, an integer expression over the plan's
symbols that templates compute with as if it were an int.

A step whose shapes hold a symbolic dim ("N", "768*N") reaches its template with those dims as
`Sym`s. Arithmetic (+ - * // %) builds canonical expressions (sums of constant-times-atom
products), so `prod(in_shape) == prod(out_shape)` holds when it holds for every value, and
`(768*N) % 4 == 0` is provably true. The products are multiplied and divided by the runtime's
`monomial_product`/`monomial_quotient` and a Sym's value is the runtime's `expr_value` of its JSON
form: Sym adds terms, prints C and builds run-time atoms (// % cdiv min) over that arithmetic.

Printed into C (an f-string), a Sym is an expression over the kernel's size arguments (`sz_N`,
one `int` argument per symbol of the step's shapes, declared by `templates.signature`); stored as
a launch dimension it is the runtime's JSON expression (`ember.runtime.symbolic`).

What a Sym cannot answer raises `SymbolicError`: an order comparison (`<`, `max()`), `int()`,
`range()`, `bool()`. Equality is provable equality: `Sym("N") == 1` is False although N may be
1 at run time, so a template may use `==` only to pick a faster path that the general path
covers. Decisions that need a number (tile choice, index width) take `typical()` (the profile's
opt value) or `upper()` (its max) inside `symbol_bounds(...)`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ember.errors import SymbolicError
from ember.runtime.symbolic import (
    MAX,
    OPT,
    dim_factors,
    expr_value,
    monomial_dim,
    monomial_product,
    monomial_quotient,
    profile_values,
)

C_PREFIX = "sz_"
_INT_MAX = 2**31 - 1
_NO_BOUNDS: Mapping[str, tuple[int, int, int]] = MappingProxyType({})
_BOUNDS: contextvars.ContextVar[Mapping[str, tuple[int, int, int]]] = contextvars.ContextVar(
    "ember_symbol_bounds", default=_NO_BOUNDS)


@contextlib.contextmanager
def symbol_bounds(bounds: Mapping[str, tuple[int, int, int]]) -> Iterator[None]:
    """The (min, opt, max) of each symbol while templates emit."""
    token = _BOUNDS.set(MappingProxyType(dict(bounds)))
    try:
        yield
    finally:
        _BOUNDS.reset(token)


class _Node:
    """An atom that is not a symbol: op(a, b) with op in // % cdiv min max."""

    __slots__ = ("op", "args", "_key")

    def __init__(self, op: str, a: Any, b: Any) -> None:
        self.op, self.args = op, (a, b)
        self._key = f"{op}({_key(a)},{_key(b)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Node) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)


def _key(x: Any) -> str:
    return x._key if isinstance(x, _Node) else x.key() if isinstance(x, Sym) else str(x)


class Sym:
    """sum of coeff * prod(atoms); atoms are symbol names (str) or `_Node`s. Never constant:
    arithmetic that cancels every atom returns a plain int."""

    __slots__ = ("terms",)

    def __init__(self, name: str | dict) -> None:
        if isinstance(name, str):
            self.terms: dict[tuple, int] = {(name,): 1}
        else:
            self.terms = name

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def parse(dim: int | str) -> int | Sym:
        """A manifest dim ("768*N") as an int or a Sym."""
        const, names = dim_factors(dim)
        out: int | Sym = const
        for name in names:
            out = out * Sym(name)
        return out

    @staticmethod
    def _make(terms: dict[tuple, int]) -> int | Sym:
        terms = {k: v for k, v in terms.items() if v}
        if not terms:
            return 0
        if list(terms) == [()]:
            return terms[()]
        return Sym(terms)

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, other: Any) -> int | Sym:
        other = _lift(other)
        if other is NotImplemented:
            return NotImplemented
        terms = dict(self.terms)
        for k, v in other.items():
            terms[k] = terms.get(k, 0) + v
        return Sym._make(terms)

    __radd__ = __add__

    def __neg__(self) -> int | Sym:
        return Sym._make({k: -v for k, v in self.terms.items()})

    def __sub__(self, other: Any) -> int | Sym:
        return self + (-other)

    def __rsub__(self, other: Any) -> int | Sym:
        return (-self) + other

    def __mul__(self, other: Any) -> int | Sym:
        other = _lift(other)
        if other is NotImplemented:
            return NotImplemented
        terms: dict[tuple, int] = {}
        for ka, va in self.terms.items():
            for kb, vb in other.items():
                v, k = monomial_product((va, ka), (vb, kb), key=_key)
                terms[k] = terms.get(k, 0) + v
        return Sym._make(terms)

    __rmul__ = __mul__

    def _non_negative(self, op: str) -> None:
        """C's / and % truncate where Python's floor: print them only over values that cannot
        be negative (every coefficient positive; symbols are at least 1)."""
        if any(v < 0 for v in self.terms.values()):
            raise SymbolicError(f"'{op}' of the symbolic size {self.key()}, which may be "
                                "negative")

    def __floordiv__(self, other: Any) -> int | Sym:
        if isinstance(other, bool) or not isinstance(other, int | Sym):
            return NotImplemented
        if isinstance(other, int):
            if other <= 0:
                raise SymbolicError(f"symbolic size {self} divided by {other}")
            if other == 1:
                return self
        exact = _exact_quotient(self, other)
        if exact is not None:
            return exact
        if isinstance(other, int):
            if all(v < 0 for v in self.terms.values()):  # -(-x // d): a ceiling division
                return -_atom("cdiv", -self, other)
            self._non_negative("//")
            return _atom("//", self, other)
        self._non_negative("//")
        other._non_negative("//")
        return _atom("//", self, other)

    def __rfloordiv__(self, other: Any) -> int | Sym:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        if other == 0:
            return 0
        return _atom("//", other, self)

    def __mod__(self, other: Any) -> int | Sym:
        if isinstance(other, bool) or not isinstance(other, int | Sym):
            return NotImplemented
        if isinstance(other, int) and other <= 0:
            raise SymbolicError(f"symbolic size {self} modulo {other}")
        if _exact_quotient(self, other) is not None:
            return 0
        self._non_negative("%")
        if isinstance(other, Sym):
            other._non_negative("%")
        return _atom("%", self, other)

    def __rmod__(self, other: Any) -> int | Sym:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return 0 if other == 0 else _atom("%", other, self)

    # -- questions -------------------------------------------------------------------------
    def key(self) -> str:
        return "+".join(f"{v}*{'*'.join(map(_key, k))}" for k, v in sorted(
            self.terms.items(), key=lambda kv: [_key(a) for a in kv[0]]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sym) and self.key() == other.key()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.key())

    def _refuse(self, what: str) -> Any:
        raise SymbolicError(f"the kernel needs {what} of the symbolic size {self.c()}, which is "
                            "only known at run time")

    def __bool__(self) -> bool:
        return self._refuse("the truth value")

    def __lt__(self, other: Any) -> bool:
        return self._refuse("an order comparison")

    __le__ = __gt__ = __ge__ = __lt__

    def __int__(self) -> int:
        return self._refuse("the value")

    __index__ = __int__

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for atoms in self.terms:
            for a in atoms:
                out |= _symbols(a)
        return out

    def value(self, values: Mapping[str, int]) -> int:
        """The value once the symbols are bound (`values`: symbol -> int)."""
        return expr_value(self.to_json(), values)

    # -- output ----------------------------------------------------------------------------
    def c(self, wide: bool | None = None) -> str:
        """A C expression over the `sz_` arguments; `long long` where its upper bound might
        not fit an int (`wide` forces either)."""
        if wide is None:  # (outside `symbol_bounds`, e.g. in a debugger: int)
            wide = bool(_BOUNDS.get()) and _bound(self, MAX) > _INT_MAX
        cast = "(long long)" if wide else ""
        terms = []
        for atoms, coeff in self.terms.items():
            factors = [_c(a, wide) for a in atoms]
            if coeff != 1 or not factors:
                factors.append(str(coeff))
            # each product is formed in 64 bits where the whole might not fit an int
            terms.append(cast + "*".join(factors))
        if len(terms) == 1 and "*" not in terms[0] and not cast:
            return terms[0]
        return "(" + " + ".join(terms) + ")"

    def __str__(self) -> str:
        return self.c()

    def __format__(self, spec: str) -> str:
        return format(self.c(), spec)

    def __repr__(self) -> str:
        return f"Sym({self.key()})"

    def to_json(self) -> Any:
        """The runtime's expression form (`ember.runtime.symbolic.expr_value`)."""
        out: Any = None
        for atoms, coeff in self.terms.items():
            plain = [a for a in atoms if isinstance(a, str)]
            term: Any
            if coeff > 0 and plain:
                term = monomial_dim((coeff, plain))
            else:
                term = coeff if not plain else ["*", coeff, monomial_dim((1, plain))]
            for a in atoms:
                if not isinstance(a, str):
                    term = _json(a) if term == 1 else ["*", term, _json(a)]
            out = term if out is None else ["+", out, term]
        return out


def _lift(x: Any) -> dict[tuple, int] | Any:
    if isinstance(x, Sym):
        return x.terms
    if isinstance(x, int) and not isinstance(x, bool):
        return {(): x}
    return NotImplemented


def _atom(op: str, a: Any, b: Any) -> Sym:
    return Sym({(_Node(op, a, b),): 1})


def _exact_quotient(a: Sym, b: int | Sym) -> int | Sym | None:
    """a / b where b is one product term (or an int) dividing every term of a."""
    divisor = _lift(b)
    if len(divisor) != 1:
        return None
    (batoms, bc), = divisor.items()
    terms: dict[tuple, int] = {}
    for atoms, c in a.terms.items():
        quotient = monomial_quotient((c, atoms), (bc, batoms))
        if quotient is None:
            return None
        terms[quotient[1]] = terms.get(quotient[1], 0) + quotient[0]
    return Sym._make(terms)


def _symbols(a: Any) -> set[str]:
    if isinstance(a, str):
        return {a}
    if isinstance(a, Sym):
        return a.symbols()
    if isinstance(a, _Node):
        return _symbols(a.args[0]) | _symbols(a.args[1])
    return set()


def _c(a: Any, wide: bool) -> str:
    if isinstance(a, str):
        return C_PREFIX + a
    if isinstance(a, int):
        return str(a)
    if isinstance(a, Sym):
        return a.c(wide)
    x, y = _c(a.args[0], wide), _c(a.args[1], wide)
    if a.op == "cdiv":
        return f"(({x} + {y} - 1) / {y})"
    if a.op in ("min", "max"):
        return f"{a.op}({x}, {y})"
    return f"({x} {'/' if a.op == '//' else '%'} {y})"  # operands are never negative


def _json(a: Any) -> Any:
    if isinstance(a, str | int):
        return a
    if isinstance(a, Sym):
        return a.to_json()
    return [a.op, _json(a.args[0]), _json(a.args[1])]


def _bound(x: Any, which: int) -> int:
    """x at the symbols' min (0), opt (1) or max (2) values."""
    if isinstance(x, int):
        return x
    bounds = _BOUNDS.get()
    missing = x.symbols() - set(bounds)
    if missing:
        raise SymbolicError(f"no profile range for symbol(s) {sorted(missing)}")
    return x.value(profile_values(bounds, which))


def dims_text(shape: Any) -> str:
    """A shape for a kernel's comment: `[N, 2, 8]`, symbolic dims as their C expressions (a
    list's own repr would print `Sym(1*N)`)."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def typical(x: int | Sym) -> int:
    """The value at the optimization profile's opt shapes (for tactic choices)."""
    return _bound(x, OPT)


def upper(x: int | Sym) -> int:
    """The value at the profile's max shapes (for buffer sizes and index widths)."""
    return _bound(x, MAX)


def smin(a: int | Sym, b: int | Sym) -> int | Sym:
    """min() that works on symbolic sizes (a run-time min where either is symbolic)."""
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    return _atom("min", a, b)


def cdiv(a: int | Sym, b: int) -> int | Sym:
    """ceil(a / b) for b > 0."""
    if isinstance(a, int):
        return -(-a // b)
    if b == 1 or _exact_quotient(a, b) is not None:
        return a // b
    return _atom("cdiv", a, b)


def symbolize(value: Any) -> Any:
    """A step's params with the dims of its shapes as Syms (see runtime.symbolic)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key in ("in_shapes", "out_shapes"):
        if key in out:
            out[key] = [None if s is None else [Sym.parse(d) for d in s] for s in out[key]]
    if isinstance(out.get("epilogue"), dict):
        out["epilogue"] = symbolize(out["epilogue"])
    return out


def is_sym(x: Any) -> bool:
    return isinstance(x, Sym)
