"""Refit recipes: how a plan weight is made again from the ONNX initializers it came from.

A recipe is JSON data: a leaf names an initializer (`{"op": "initializer", "name": ...}`) or holds
a small constant's bytes (`{"op": "value", ...}`); every other node is one transform of this
module's vocabulary applied to its `args` (recipes), with its `params`. The folding passes of a
REFIT build compute the weights they fold *with* these transforms (`apply`) and record the node
(`node`), so replaying a recipe (`replay`) over the same initializers gives the same bytes, and
over new ones what a build from them would have packed. Numpy and the standard library only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ember.errors import PlanError
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cpu_kernels.layout import pack, pack_depthwise_weight, space_to_depth_weight
from ember.runtime.manifest import decode, jsonable

Recipe = dict[str, Any]
# a constant folded together with initializers is held in the recipe up to this many elements
VALUE_LIMIT = 1 << 16
_MAX_DEPTH = 256


# -- the vocabulary -------------------------------------------------------------------------

def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy; an onnx dependency)
    return np.dtype(name)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def _bn_scale64(gamma: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    """s = γ/√(var + ε) per channel, in float64 (BatchNorm as x·s + t)."""
    return _f64(gamma).reshape(-1) / np.sqrt(_f64(var).reshape(-1) + eps)


def _bn_shift64(gamma, beta, mean, var, eps: float) -> np.ndarray:
    return _f64(beta).reshape(-1) - _f64(mean).reshape(-1) * _bn_scale64(gamma, var, eps)


def _rows(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """A per-index vector shaped to broadcast along `axis` of an `ndim`-D array."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _bn_conv_weight(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """A conv weight with the BatchNorm after it folded in: w·s per output channel."""
    w, gamma, var = a
    s = _bn_scale64(gamma, var, p["eps"])
    return (_f64(w) * _rows(s, w.ndim, 0)).astype(w.dtype)


def _bn_conv_bias(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """The bias of that conv: (b − mean)·s + β, i.e. b·s + t (b = 0 where the conv had none)."""
    gamma, beta, mean, var = a[:4]
    s = _bn_scale64(gamma, var, p["eps"])
    b0 = np.zeros(s.size) if len(a) == 4 else _f64(a[4])
    return (b0 * s + _bn_shift64(gamma, beta, mean, var, p["eps"])).astype(_dtype(p["dtype"]))


def _bn_scale(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    return _bn_scale64(a[0], a[1], p["eps"]).astype(_dtype(p["dtype"])).reshape(p["shape"])


def _bn_shift(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    return _bn_shift64(*a, p["eps"]).astype(_dtype(p["dtype"])).reshape(p["shape"])


def _channel_vector(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """A scalar, or values varying along `axis` of a rank-`rank` result only, as one float64
    value per index of that axis (`n` of them), as numpy broadcasting reads them."""
    c = _f64(a[0])
    padded = c.reshape((1,) * (p["rank"] - c.ndim) + c.shape)
    return np.broadcast_to(padded.reshape(-1), (p["n"],)).copy()


def _scale_axis(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """w·v (or w/v) along `axis`, computed in float64, in w's dtype."""
    w, v = a
    s = 1.0 / v if p.get("invert") else v
    return (_f64(w) * _rows(s, w.ndim, p["axis"])).astype(w.dtype)


def _conv_bias(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """A conv bias after the multiply (`mul`/`div`) or add (`add`/`sub`) by v folded into it
    (b = 0 where the conv had none)."""
    v = a[-1]
    b = np.zeros(p["n"]) if len(a) == 1 else _f64(a[0])
    fn = p["fn"]
    if fn in ("mul", "div"):
        b = b * (1.0 / v if fn == "div" else v)
    else:
        b = b + v if fn == "add" else b - v
    return b.astype(_dtype(p["dtype"]))


def _kernel(a: list[np.ndarray], p: Mapping) -> np.ndarray:
    """An nn op's numpy semantics (the CPU executor's kernel): constant folding's."""
    kernel = KERNELS.get(p["kernel"])
    if kernel is None:
        raise PlanError(f"refit recipe: unknown kernel {p['kernel']!r}")
    return np.asarray(kernel(list(a), p["params"])[p.get("output", 0)])


TRANSFORMS: dict[str, Callable[[list[np.ndarray], Mapping], np.ndarray]] = {
    "cast": lambda a, p: np.asarray(a[0]).astype(_dtype(p["dtype"])),
    "reshape": lambda a, p: np.asarray(a[0]).reshape(p["shape"]),
    "transpose": lambda a, p: np.ascontiguousarray(np.asarray(a[0]).transpose(p["perm"])),
    "swap_last": lambda a, p: np.ascontiguousarray(np.swapaxes(a[0], -1, -2)),
    "pad": lambda a, p: np.pad(a[0], [tuple(x) for x in p["pads"]]),
    "concat": lambda a, p: np.concatenate(a, axis=p["axis"]),
    "pack_nc4hw4": lambda a, p: pack(np.asarray(a[0])),
    "pack_depthwise": lambda a, p: pack_depthwise_weight(np.asarray(a[0])),
    "space_to_depth_weight": lambda a, p: space_to_depth_weight(
        np.asarray(a[0]), p["block"], p["channels"], p["padded"]),
    "kernel": _kernel,
    "bn_conv_weight": _bn_conv_weight,
    "bn_conv_bias": _bn_conv_bias,
    "bn_scale": _bn_scale,
    "bn_shift": _bn_shift,
    "channel_vector": _channel_vector,
    "scale_axis": _scale_axis,
    "conv_bias": _conv_bias,
}
_LEAVES = ("initializer", "value")


def apply(op: str, arrays: list[np.ndarray], **params: Any) -> np.ndarray:
    """Transform `op` of the vocabulary on arrays (what a folding pass computes with)."""
    return TRANSFORMS[op](list(arrays), params)


def node(op: str, args: list[Recipe | None], **params: Any) -> Recipe:
    """The recipe of `apply(op, ...)` on values with these recipes (an argument without one, a
    value the build cannot replay, is an `opaque` leaf: the recipe then keeps its initializers
    but is not `replayable`)."""
    if op not in TRANSFORMS:
        raise KeyError(f"no refit transform {op!r}")
    return {"op": op, "args": [OPAQUE if a is None else a for a in args],
            "params": jsonable(params)}


OPAQUE: Recipe = {"op": "opaque"}


def opaque(args: list[Recipe | None]) -> Recipe:
    """A value made from these by something outside the vocabulary: it keeps their
    initializers (which are then baked into the plan) and is not replayable."""
    return {"op": "opaque", "args": [a for a in args if a is not None]}


def replayable(recipe: Recipe | None) -> bool:
    """Whether a recipe can be replayed (it has no opaque leaf)."""
    if recipe is None:
        return False
    stack = [recipe]
    while stack:
        r = stack.pop()
        if r.get("op") == "opaque":
            return False
        stack.extend(r.get("args", ()))
    return True



def initializer(name: str) -> Recipe:
    return {"op": "initializer", "name": name}


def value(array: np.ndarray) -> Recipe | None:
    """A small constant's recipe: its bytes (None above VALUE_LIMIT elements)."""
    array = np.ascontiguousarray(array)
    if array.size > VALUE_LIMIT or array.dtype.hasobject:
        return None
    return {"op": "value", "dtype": array.dtype.name, "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def leaves(recipe: Recipe | None) -> set[str]:
    """The initializers a recipe reads."""
    out: set[str] = set()
    stack = [recipe] if recipe is not None else []
    while stack:
        r = stack.pop()
        if r.get("op") == "initializer":
            out.add(r["name"])
        stack.extend(r.get("args", ()))
    return out


# -- replay ---------------------------------------------------------------------------------

def replay(recipe: Recipe, sources: Mapping[str, np.ndarray]) -> np.ndarray:
    """The array a recipe makes from `sources` (initializer name -> array)."""
    op = recipe["op"]
    if op == "initializer":
        return np.asarray(sources[recipe["name"]])
    if op == "value":
        raw = base64.b64decode(recipe["data"])
        return np.frombuffer(raw, dtype=_dtype(recipe["dtype"])).reshape(recipe["shape"]).copy()
    return TRANSFORMS[op]([replay(a, sources) for a in recipe["args"]], decode(recipe["params"]))


def check_recipe(recipe: Any, where: str, depth: int = 0) -> None:
    """A recipe read from a plan: known transforms, well-formed leaves (else a PlanError)."""
    if depth > _MAX_DEPTH:
        raise PlanError(f"{where}: refit recipe nested too deeply")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("op"), str):
        raise PlanError(f"{where}: a refit recipe must be an object with an 'op', not "
                        f"{str(recipe)[:80]}")
    op = recipe["op"]
    if op == "initializer":
        if set(recipe) != {"op", "name"} or not isinstance(recipe["name"], str):
            raise PlanError(f"{where}: malformed initializer leaf {recipe}")
        return
    if op == "value":
        if set(recipe) != {"op", "dtype", "shape", "data"} or not isinstance(recipe["data"], str) \
                or not isinstance(recipe["shape"], list) \
                or not all(isinstance(d, int) and d >= 0 for d in recipe["shape"]):
            raise PlanError(f"{where}: malformed value leaf")
        try:
            dtype = _dtype(str(recipe["dtype"]))
            size = len(base64.b64decode(recipe["data"], validate=True))
        except (TypeError, ValueError) as e:
            raise PlanError(f"{where}: malformed value leaf ({e})") from None
        if dtype.hasobject or size != int(np.prod(recipe["shape"])) * dtype.itemsize:
            raise PlanError(f"{where}: a value leaf's bytes do not match its dtype and shape")
        return
    if op not in TRANSFORMS:
        raise PlanError(f"{where}: unknown refit transform {op!r}")
    if set(recipe) != {"op", "args", "params"} or not isinstance(recipe["args"], list) \
            or not isinstance(recipe["params"], dict):
        raise PlanError(f"{where}: malformed refit transform {op!r}")
    for arg in recipe["args"]:
        check_recipe(arg, where, depth + 1)


class RecipeTrace:
    """What a REFIT build knows of its weights while the passes run: each store entry's recipe
    (the initializers' own entries are leaves), and the initializers whose values some code read
    without recording a recipe (`baked`: name -> the pass that did, once known). The module's
    weight store holds it (`WeightStore.refit`); None in builds without REFIT."""

    def __init__(self) -> None:
        self.recipes: dict[str, Recipe] = {}
        self.baked: dict[str, str] = {}

    def bake(self, ref: str) -> None:
        """The store entry `ref` was read by code that keeps no recipe: its initializers' values
        are now part of the plan in ways a refit cannot redo."""
        for name in leaves(self.recipes.get(ref)):
            self.baked.setdefault(name, "")

    def bake_recipe(self, recipe: Recipe | None) -> None:
        for name in leaves(recipe):
            self.baked.setdefault(name, "")
