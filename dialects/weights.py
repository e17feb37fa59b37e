"""The weight store: named tensors kept beside the IR, which refers to them by name.

A module's store is found with `weights_of(module)`; passes that read or make weights (constant
folding, BatchNorm folding, refit) go through it, so IR dumps never carry large tensors inline.
"""

from __future__ import annotations

import weakref

import numpy as np
from xdsl.dialects.builtin import ModuleOp


class WeightStore:
    """Name -> numpy array, in insertion order."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"weight '{name}' is not in the weight store") from None

    def names(self) -> list[str]:
        return list(self._arrays)

    def add(self, name: str, array: np.ndarray) -> str:
        """Store `array` under `name`, or under a fresh variant of it if taken; return the name."""
        unique, n = name, 0
        while unique in self._arrays:
            n += 1
            unique = f"{name}_{n}"
        self._arrays[unique] = np.asarray(array)
        return unique

    def total_bytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


_STORES: weakref.WeakKeyDictionary[ModuleOp, WeightStore] = weakref.WeakKeyDictionary()


def weights_of(module: ModuleOp) -> WeightStore:
    """The module's weight store (an empty one for a module parsed from text)."""
    store = _STORES.get(module)
    if store is None:
        store = _STORES[module] = WeightStore()
    return store


def attach_weights(module: ModuleOp, store: WeightStore) -> None:
    _STORES[module] = store
