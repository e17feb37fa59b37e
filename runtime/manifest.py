"""Validation of a plan's manifest at load, so the executors can trust it: a malformed or hostile
manifest gets a PlanError naming what is wrong, never a KeyError, an out-of-bounds copy or a crash.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ember.errors import PlanError
from ember.runtime.symbolic import (
    MAX,
    SYMBOL,
    check_dim,
    dim_symbols,
    dim_value,
    profile_values,
    size_form,
)

BUFFER_KINDS = ("input", "weight", "arena", "view")
_MAX_RANK = 64


def decode(value: Any) -> Any:
    """Manifest JSON -> Python data (non-finite floats were stored as {"float": "inf"})."""
    if isinstance(value, dict):
        if set(value) == {"float"}:
            text = value["float"]
            if not isinstance(text, str):
                raise PlanError("manifest: a {\"float\": ...} value is not a string")
            try:
                return float(text)
            except ValueError:
                raise PlanError(f"manifest: {text!r} is not a float") from None
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def jsonable(value: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """Python/numpy data as strict JSON (non-finite floats as {"float": "inf"}, as the
    manifest stores them; `decode` reads them back). `other` converts what this does not know
    (codegen: xDSL element types to dtype names)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if np.isfinite(f) else {"float": repr(f)}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v, other) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, other) for k, v in value.items()}
    if isinstance(value, np.dtype):
        return value.name
    return value if other is None else other(value)


def _int(value: Any, what: str, lo: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise PlanError(f"manifest: {what} must be an integer ≥ {lo}, not {value!r}")
    return value


# ml_dtypes' types (an onnx dependency): numpy knows their names once ml_dtypes is imported
ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
             "float8_e8m0fnu", "float4_e2m1fn", "int4", "uint4", "int2", "uint2")


def _dtype(value: Any, what: str) -> np.dtype:
    if value in ML_DTYPES:
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            raise PlanError(f"manifest: {what} is {value}, which needs the ml_dtypes "
                            "package") from None
        return np.dtype(value)
    try:
        dtype = np.dtype(value) if isinstance(value, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biufc" or dtype.itemsize == 0:
        raise PlanError(f"manifest: {what} has a bad dtype {value!r}")
    return dtype


def _shape(value: Any, what: str, symbols: Mapping[str, Any] | None = None) -> tuple:
    """A shape of ints and (with `symbols`) monomials of the plan's symbols."""
    if not isinstance(value, list) or len(value) > _MAX_RANK:
        raise PlanError(f"manifest: {what} has a bad shape {value!r}")
    if symbols:
        for d in value:
            check_dim(d, symbols, what)
        return tuple(value)
    return tuple(_int(d, f"a dim of {what}") for d in value)


def nbytes(buffer: Mapping[str, Any], maxima: Mapping[str, int] | None = None) -> int:
    """A buffer's bytes (at the symbols' `maxima` where its shape is symbolic)."""
    return (math.prod(dim_value(d, maxima or {}) for d in buffer["shape"])
            * np.dtype(buffer["dtype"]).itemsize)


def symbols_of(manifest: Mapping[str, Any]) -> dict[str, tuple[int, int, int]]:
    """The plan's symbols: name -> (min, opt, max), checked."""
    raw = manifest.get("symbols", {})
    if not isinstance(raw, Mapping) or len(raw) > _MAX_RANK:
        raise PlanError("manifest: 'symbols' must be an object")
    out = {}
    for name, r in raw.items():
        if not SYMBOL.fullmatch(name) or not isinstance(r, list) or len(r) != 3:
            raise PlanError(f"manifest: symbol {name!r} is malformed")
        # (a data-dependent symbol's min is 0: data_symbols() checks a step binds it)
        lo, opt, hi = (_int(v, f"a bound of symbol {name!r}") for v in r)
        if not lo <= opt <= hi or hi > 2**31 - 1:  # kernels take them as int
            raise PlanError(f"manifest: symbol {name!r} has a bad range {r!r}")
        out[name] = (lo, opt, hi)
    constraints = manifest.get("constraints", [])
    if not isinstance(constraints, list) or len(constraints) > 4096 or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[1], int)
            and not isinstance(c[1], bool) and c[1] > 0 for c in constraints):
        raise PlanError("manifest: 'constraints' must be a list of [dim, size]")
    for dim, _ in constraints:
        check_dim(dim, out, "a constraint")
    return out


def _check_profiles(manifest: Mapping[str, Any]) -> None:
    """"profiles": a list of {input name: [min, opt, max] shapes of ints}."""
    profiles = manifest.get("profiles", [])
    if not isinstance(profiles, list) or len(profiles) > 1024:
        raise PlanError("manifest: 'profiles' must be a list")
    for k, p in enumerate(profiles):
        if not isinstance(p, Mapping) or not all(
                isinstance(v, list) and len(v) == 3 and all(
                    isinstance(s, list) and len(s) <= _MAX_RANK and all(
                        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s)
                    for s in v) for v in p.values()):
            raise PlanError(f"manifest: optimization profile #{k} is malformed")


def validate(manifest: Mapping[str, Any], weights_bytes: int) -> tuple[list[dict], list[dict]]:
    """Check the buffers, I/O descriptors and steps; return (buffers, decoded steps)."""
    if not isinstance(manifest, Mapping):
        raise PlanError("manifest: not an object")
    arena = _int(manifest.get("arena_bytes"), "arena_bytes")
    symbols = symbols_of(manifest)
    _check_profiles(manifest)
    maxima = profile_values(symbols, MAX)
    buffers = manifest.get("buffers")
    if not isinstance(buffers, list):
        raise PlanError("manifest: 'buffers' must be a list")
    for i, b in enumerate(buffers):
        where = f"buffer #{i}"
        if not isinstance(b, dict) or b.get("id") != i or b.get("kind") not in BUFFER_KINDS:
            raise PlanError(f"manifest: {where} is malformed")
        _dtype(b.get("dtype"), where)
        _shape(b.get("shape"), where, symbols)
        size = nbytes(b, maxima)
        kind = b["kind"]
        if kind in ("arena", "weight"):
            off = _int(b.get("offset"), f"{where}'s offset")
            limit = arena if kind == "arena" else weights_bytes
            if off + size > limit:
                raise PlanError(f"manifest: {where} ({size} bytes at {off}) lies outside the "
                                f"{'arena' if kind == 'arena' else 'weights section'}")
        elif kind == "view":
            base = b.get("base")
            if not (isinstance(base, int) and not isinstance(base, bool) and 0 <= base < i):
                raise PlanError(f"manifest: {where} views a bad base {base!r}")
            if (np.dtype(b["dtype"]).itemsize, size_form(b["shape"])) != (
                    np.dtype(buffers[base]["dtype"]).itemsize, size_form(buffers[base]["shape"])):
                raise PlanError(f"manifest: {where} differs in size from the buffer it views")
        elif not isinstance(b.get("name"), str):
            raise PlanError(f"manifest: input {where} has no name")
    names: set[str] = set()
    for key in ("inputs", "outputs"):
        descs = manifest.get(key)
        if not isinstance(descs, list):
            raise PlanError(f"manifest: '{key}' must be a list")
        for t in descs:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise PlanError(f"manifest: an entry of '{key}' is malformed")
            name = t["name"]
            if name in names:
                raise PlanError(f"manifest: I/O name '{name}' appears twice")
            names.add(name)
            j = t.get("buffer")
            if not (isinstance(j, int) and not isinstance(j, bool) and 0 <= j < len(buffers)):
                raise PlanError(f"manifest: I/O tensor '{name}' names a bad buffer {j!r}")
            b = buffers[j]
            if (_dtype(t.get("dtype"), name) != np.dtype(b["dtype"])
                    or _shape(t.get("shape"), name, symbols) != tuple(b["shape"])):
                raise PlanError(f"manifest: I/O tensor '{name}' disagrees with its buffer")
            if key == "inputs" and (b["kind"] != "input" or b["name"] != name):
                raise PlanError(f"manifest: input '{name}' is not bound to its input buffer")
            if not isinstance(t.get("format", ""), str):
                raise PlanError(f"manifest: I/O tensor '{name}' has a bad format")
    raw_steps = manifest.get("steps")
    if not isinstance(raw_steps, list):
        raise PlanError("manifest: 'steps' must be a list")
    steps = []
    for i, s in enumerate(raw_steps):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) \
                or not isinstance(s.get("template"), str) or not isinstance(s.get("params"), dict):
            raise PlanError(f"manifest: step #{i} is malformed")
        origin = s.get("origin", [])
        if not isinstance(origin, list) or not all(isinstance(o, str) for o in origin):
            raise PlanError(f"manifest: step {s['name']!r} has a bad origin")
        for key in ("inputs", "outputs"):
            ids = s.get(key)
            if not isinstance(ids, list) or not all(
                    isinstance(j, int) and not isinstance(j, bool) and 0 <= j < len(buffers)
                    for j in ids):
                raise PlanError(f"manifest: step {s['name']!r} has bad {key}")
        for j in s["outputs"]:
            if buffers[j]["kind"] != "arena":
                raise PlanError(f"manifest: step {s['name']!r} writes buffer #{j}, which is "
                                f"not an activation")
        steps.append(decode(s))
    check_bindings(buffers, steps, [t["buffer"] for t in manifest["outputs"]])
    data_symbols(buffers, steps, symbols)
    return buffers, steps


def data_symbols(buffers: list[dict], steps: list[dict],
                 symbols: Mapping[str, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    """The data-dependent symbols (those whose range starts at 0), each -> (the step that binds
    it, the result, the axis), checked: each bound by exactly one step, from a result dim that
    is exactly the symbol, and no buffer of an earlier step (nor a graph input) sized by it."""
    data = {k for k, v in symbols.items() if v[0] == 0}
    out: dict[str, tuple[int, int, int]] = {}
    for b in buffers:
        if b["kind"] == "input" and any(p in data for d in b["shape"] for p in dim_symbols(d)):
            raise PlanError(f"manifest: input '{b['name']}' is sized by a data-dependent symbol")
    def check_sized(step: dict, ids: list[int]) -> None:
        for j in ids:
            early = [p for d in buffers[j]["shape"] for p in dim_symbols(d)
                     if p in data and p not in out]
            if early:
                raise PlanError(f"manifest: step {step['name']!r} uses the data-dependent "
                                f"symbol {early[0]!r} before a step binds it")

    for i, step in enumerate(steps):
        what = f"manifest: step {step['name']!r}"
        check_sized(step, step["inputs"])
        binds = step.get("binds", {})
        if not isinstance(binds, Mapping):
            raise PlanError(f"{what}'s binds must be an object")
        for name, where in binds.items():
            if name not in data or name in out:
                raise PlanError(f"{what} binds {name!r}, which is not an unbound "
                                "data-dependent symbol")
            if not (isinstance(where, list) and len(where) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in where)
                    and 0 <= where[0] < len(step["outputs"])):
                raise PlanError(f"{what} binds {name!r} from a bad place {where!r}")
            shape = buffers[step["outputs"][where[0]]]["shape"]
            if not 0 <= where[1] < len(shape) or shape[where[1]] != name:
                raise PlanError(f"{what} binds {name!r} from dim {where[1]} of a result of "
                                f"shape {shape}")
            out[name] = (i, where[0], where[1])
        check_sized(step, step["outputs"])
    unbound = sorted(data - set(out))
    if unbound:
        raise PlanError(f"manifest: no step binds the data-dependent symbol(s) "
                        f"{', '.join(unbound)}")
    return out


def _root(buffers: list[dict], index: int) -> int:
    """The buffer whose bytes buffer `index` sees (views are of earlier buffers: it ends)."""
    while buffers[index]["kind"] == "view":
        index = buffers[index]["base"]
    return index


def _check_operands(step: Mapping[str, Any], buffers: list[dict], side: str,
                    shapes: Any, dtypes: Any, out_dtype: Any = None) -> None:
    """A step's `in`/`out` shapes and dtypes (its params') against the buffers it binds."""
    what = f"manifest: step {step['name']!r}"
    ids = step["inputs" if side == "in" else "outputs"]
    if not (isinstance(shapes, list) and isinstance(dtypes, list)
            and len(shapes) == len(dtypes) == len(ids)):
        raise PlanError(f"{what} binds {len(ids)} {side}put buffer(s), but its params describe "
                        f"{len(shapes) if isinstance(shapes, list) else 'no'} {side}put(s)")
    for k, (shape, dtype, j) in enumerate(zip(shapes, dtypes, ids, strict=True)):
        b = buffers[j]
        if out_dtype is not None:  # an epilogue's cast: the kernel writes that type
            dtype = out_dtype
        if not isinstance(shape, list) or len(shape) != len(b["shape"]) or any(
                d is not None and d != e for d, e in zip(shape, b["shape"], strict=True)):
            raise PlanError(f"{what}: {side}put #{k} has shape {shape!r}, but it is bound to "
                            f"buffer #{j} of shape {b['shape']}")
        if dtype != b["dtype"]:
            raise PlanError(f"{what}: {side}put #{k} is {dtype!r}, but it is bound to buffer "
                            f"#{j} of {b['dtype']}")


def check_bindings(buffers: list[dict], steps: list[dict], outputs: list[int]) -> None:
    """Each step's buffers agree with its params (count, shape, dtype: an epilogue's extra
    inputs and output cast included), and no step (nor a graph output, `outputs`) reads an
    activation before a step wrote it: so a hostile plan cannot make a kernel read or write
    past a buffer, or read stale bytes."""
    written: set[int] = set()
    for step in steps:
        params = step["params"]
        if not isinstance(params, dict):  # {"float": ...} decodes to a number
            raise PlanError(f"manifest: step {step['name']!r} has malformed params")
        epilogue = params.get("epilogue")
        extra_shapes: Any = []
        extra_dtypes: Any = []
        out_dtype = None
        if epilogue is not None:
            if not isinstance(epilogue, dict):
                raise PlanError(f"manifest: step {step['name']!r} has a malformed epilogue")
            extra_shapes = epilogue.get("in_shapes", [])
            extra_dtypes = epilogue.get("in_dtypes", [])
            out_dtype = epilogue.get("out_dtype")
            if not (isinstance(extra_shapes, list) and isinstance(extra_dtypes, list)):
                raise PlanError(f"manifest: step {step['name']!r}'s epilogue has malformed "
                                "in_shapes or in_dtypes")
        shapes, dtypes = params.get("in_shapes"), params.get("in_dtypes")
        if isinstance(shapes, list) and isinstance(dtypes, list):
            shapes, dtypes = shapes + extra_shapes, dtypes + extra_dtypes
        _check_operands(step, buffers, "in", shapes, dtypes)
        _check_operands(step, buffers, "out", params.get("out_shapes"),
                        params.get("out_dtypes"), out_dtype)
        for j in step["inputs"]:
            root = _root(buffers, j)
            if buffers[root]["kind"] == "arena" and root not in written:
                raise PlanError(f"manifest: step {step['name']!r} reads buffer #{j} before any "
                                "step writes it")
        written.update(step["outputs"])
    for j in outputs:
        root = _root(buffers, j)
        if buffers[root]["kind"] == "arena" and root not in written:
            raise PlanError(f"manifest: graph output buffer #{j} is never written")


def host_memory_bytes() -> int:
    """The machine's physical memory (the CPU executor's bound on a plan's arena)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): a terabyte
        return 1 << 40


def check_memory(arena_bytes: int, workspace_bytes: int, limit: int, device: str) -> None:
    """An execution context allocates the arena and the workspace: refuse a plan that asks for
    more than the device has (a hostile `arena_bytes` would otherwise be a MemoryError or an
    allocation failure deep in a context)."""
    if arena_bytes + workspace_bytes > limit:
        raise PlanError(f"manifest: a context of this plan needs {arena_bytes} bytes of arena "
                        f"and {workspace_bytes} of workspace, more than the {device}'s "
                        f"{limit} bytes of memory")
