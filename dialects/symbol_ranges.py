"""The optimization profile's symbols, recorded on the module: `ember.symbols = {N = [1, 8,
64]}` (each symbolic input dim's min, opt and max; the builder writes it). Passes that need the
profile read it from here, so any dumped stage replays with it: fold-constants and plan-memory
keep symbols in range (their max), select-tactics times kernels at opt (and small-shape variants
at min), emit-cuda emits symbolic kernels over the ranges.
"""

from __future__ import annotations

from collections.abc import Mapping

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp

from ember.dialects.attributes import attribute_value, to_attribute
from ember.errors import EmberError

SYMBOL_RANGES = "ember.symbols"


def set_symbol_ranges(module: ModuleOp, ranges: Mapping[str, tuple[int, int, int]]) -> None:
    """Record each symbol's (min, opt, max) on the module (replacing what was there)."""
    module.attributes[SYMBOL_RANGES] = DictionaryAttr(
        {k: to_attribute([int(x) for x in v]) for k, v in ranges.items()})


def symbol_ranges(module: ModuleOp) -> dict[str, tuple[int, int, int]]:
    """The module's symbols and their (min, opt, max); {} where it records none. A malformed
    record (hand-written IR) is an error naming it."""
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
    return {k: v[2] for k, v in symbol_ranges(module).items()}
