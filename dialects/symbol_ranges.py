"""The optimization profile's symbols, recorded on the module: `ember.symbols = {N = [1, 8,
64]}` (each symbolic input dim's min, opt and max; the builder writes it). Passes that need the
profile read it from here, so any dumped stage replays with it: fold-constants and plan-memory
keep symbols in range (their max), select-tactics times kernels at opt (and small-shape variants
at min), emit-cuda emits symbolic kernels over the ranges.

Data-dependent dims (the length of NonZero's, Unique's, Compress's or NonMaxSuppression's result)
are symbols too, made by the op whose result they size: `ember.data_symbols = {nonzero0 = 120}`
(each one's upper bound, at the profile's max). The op names its symbol (its `size` property);
its step binds the symbol when the plan runs, and the steps after it read the value as they read
an input symbol. Their range is [0, bound, bound]: memory is planned for the bound, kernels are
timed at it.
"""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp

from ember.dialects.attributes import attribute_value, to_attribute
from ember.errors import EmberError
from ember.runtime.symbolic import MAX, profile_values

SYMBOL_RANGES = "ember.symbols"
DATA_SYMBOLS = "ember.data_symbols"


def set_symbol_ranges(module: ModuleOp, ranges: Mapping[str, tuple[int, int, int]]) -> None:
    """Record each symbol's (min, opt, max) on the module (replacing what was there)."""
    module.attributes[SYMBOL_RANGES] = DictionaryAttr(
        {k: to_attribute([int(x) for x in v]) for k, v in ranges.items()})


def symbol_ranges(module: ModuleOp) -> dict[str, tuple[int, int, int]]:
    """The module's symbols and their (min, opt, max), the data-dependent ones (0, bound,
    bound) after the profile's; {} where it records none. A malformed record (hand-written IR)
    is an error naming it."""
    out = _profile_ranges(module)
    for name, bound in data_symbols(module).items():
        if name in out:
            raise EmberError(f"{DATA_SYMBOLS}: '{name}' is also a symbol of the profile "
                             f"({SYMBOL_RANGES})")
        out[name] = (0, bound, bound)
    return out


def data_symbols(module: ModuleOp) -> dict[str, int]:
    """The module's data-dependent symbols and their upper bounds ({} where it has none)."""
    attr = module.attributes.get(DATA_SYMBOLS)
    if attr is None:
        return {}
    if not isinstance(attr, DictionaryAttr):
        raise EmberError(f"{DATA_SYMBOLS} must be a dictionary of upper bounds, got {attr}")
    out: dict[str, int] = {}
    for name, value in attr.data.items():
        bound = attribute_value(value)
        if not isinstance(bound, int) or isinstance(bound, bool) or not \
                0 <= bound <= 2**31 - 1:
            raise EmberError(f"{DATA_SYMBOLS}: '{name}' must be an upper bound in "
                             f"[0, 2^31 - 1], got {value}")
        out[name] = bound
    return out


def add_data_symbol(module: ModuleOp, prefix: str, bound: int) -> str:
    """A new data-dependent symbol named `prefix` and a number (unused by the module's
    symbols), bounded by `bound`; its name."""
    taken = {**_profile_ranges(module), **data_symbols(module)}
    name = next(f"{prefix}{k}" for k in range(len(taken) + 1) if f"{prefix}{k}" not in taken)
    attr = module.attributes.get(DATA_SYMBOLS)
    entries = dict(attr.data) if isinstance(attr, DictionaryAttr) else {}
    module.attributes[DATA_SYMBOLS] = DictionaryAttr({**entries, name: to_attribute(int(bound))})
    return name


def _profile_ranges(module: ModuleOp) -> dict[str, tuple[int, int, int]]:
    attr = module.attributes.get(SYMBOL_RANGES)
    if attr is None:
        return {}
    out: dict[str, tuple[int, int, int]] = {}
    if not isinstance(attr, DictionaryAttr):
        raise EmberError(f"{SYMBOL_RANGES} must be a dictionary of [min, opt, max], got {attr}")
    for name, value in attr.data.items():
        bounds = attribute_value(value)
        if not isinstance(bounds, list) or len(bounds) != 3 or not all(
                isinstance(b, int) and not isinstance(b, bool) for b in bounds) \
                or not 1 <= bounds[0] <= bounds[1] <= bounds[2]:
            raise EmberError(f"{SYMBOL_RANGES}: '{name}' must be [min, opt, max] with "
                             f"1 <= min <= opt <= max, got {value}")
        out[name] = (bounds[0], bounds[1], bounds[2])
    return out


def symbol_maxima(module: ModuleOp) -> dict[str, int]:
    """Each symbol's profile max (what fold-constants and plan-memory size and check against)."""
    return profile_values(symbol_ranges(module), MAX)
