"""Plugins: the process-wide registry of custom ops, and the CPU executor's `plugin` kernel.

A plugin is named `"namespace::name"` plus a version string ("1" unless given). What the
compiler needs of it (its shape/type function, its CUDA kernel, its supported dtypes) is
registered through `ember.plugin` (compiler/plugins.py) and kept here as plain callables, so
the dialects and codegen reach it without importing the compiler. A plan never carries Python:
its plugin steps hold the name, version and attribute values, and the GPU runs the kernel packed
in the plan, while the CPU executor runs the plugin's numpy *reference*, which the loading
process registers with `impl` (stdlib + numpy only: a deployment machine needs no compiler).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ember.errors import PlanError, PluginError

DEFAULT_VERSION = "1"


def split_name(qualified: str) -> tuple[str, str]:
    """`"my.domain::ScaledSoftplus"` -> ("my.domain", "ScaledSoftplus"); a name without
    `::` has the empty namespace."""
    if not isinstance(qualified, str) or not qualified:
        raise PluginError(f"a plugin name must be a non-empty string 'namespace::name', got "
                          f"{qualified!r}")
    namespace, sep, name = qualified.rpartition("::")
    if not name or (sep and not namespace):
        raise PluginError(f"plugin name {qualified!r}: expected 'namespace::name'")
    return namespace, name


def qualified_name(namespace: str, name: str) -> str:
    return f"{namespace}::{name}" if namespace else name


def label(qualified: str, version: str) -> str:
    """How errors and listings name a plugin: `'my.domain::Op' (version 1)`."""
    return f"plugin '{qualified}' (version {version})"


@dataclass
class PluginDefinition:
    """One registered plugin. `describe(in_shapes, in_dtypes, attrs) -> [(shape, dtype)]`: its
    outputs (dims ints or symbolic dims such as "N"; dtypes numpy names); `emit(in_shapes,
    in_dtypes, out_shapes, out_dtypes, attrs) -> (kernel name, CUDA C source, grid, block,
    shared bytes)`: its kernel; `supports(in_shapes, in_dtypes, outs) -> bool`: whether it
    runs at these dtypes (None: it declares none, so it keeps the dtypes it is given);
    `reference(inputs, attrs, out_shapes,
    out_dtypes) -> outputs`: its numpy semantics. Each is None until registered; `attributes`:
    name -> default (`REQUIRED` where it has none), None until the shape function says."""

    namespace: str
    name: str
    version: str
    attributes: dict[str, Any] | None = None
    describe: Callable[..., list[tuple[tuple, str]]] | None = field(default=None, repr=False)
    emit: Callable[..., tuple[str, str, tuple, tuple, int]] | None = field(default=None,
                                                                           repr=False)
    supports: Callable[..., bool] | None = field(default=None, repr=False)
    reference: Callable[..., list[np.ndarray]] | None = field(default=None, repr=False)

    @property
    def qualified(self) -> str:
        return qualified_name(self.namespace, self.name)

    @property
    def label(self) -> str:
        return label(self.qualified, self.version)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_PLUGINS: dict[tuple[str, str, str], PluginDefinition] = {}


def definition(qualified: str, version: str = DEFAULT_VERSION, *,
               create: bool = False) -> PluginDefinition | None:
    """The registered plugin of this name and version (a new empty one with `create`)."""
    namespace, name = split_name(qualified)
    key = (namespace, name, str(version))
    found = _PLUGINS.get(key)
    if found is None and create:
        found = _PLUGINS[key] = PluginDefinition(namespace, name, str(version))
    return found


def definitions() -> list[PluginDefinition]:
    """Every registered plugin, in registration order."""
    return list(_PLUGINS.values())


def versions(qualified: str) -> list[str]:
    """The versions registered under a name."""
    namespace, name = split_name(qualified)
    return [v for (ns, n, v) in _PLUGINS if (ns, n) == (namespace, name)]


def deregister(qualified: str, version: str = DEFAULT_VERSION) -> bool:
    """Forget a plugin; True if it was registered."""
    namespace, name = split_name(qualified)
    return _PLUGINS.pop((namespace, name, str(version)), None) is not None


# -- the numpy reference -------------------------------------------------------------------------

def impl(qualified: str, version: str = DEFAULT_VERSION) -> Callable[[Callable], Callable]:
    """Decorator registering a plugin's numpy reference (TensorRT's `tensorrt.plugin.impl`
    form): it takes the inputs as numpy arrays (positional, in order), the plugin's attributes
    as keyword arguments and, where it declares them, `outputs` (a tuple of arrays of the
    outputs' shapes and dtypes to fill) and `stream` (0 on the CPU); without an `outputs`
    parameter it returns the output array(s) instead."""
    def register(fn: Callable) -> Callable:
        register_reference(qualified, fn, version)
        return fn
    return register


def register_reference(qualified: str, fn: Callable, version: str = DEFAULT_VERSION) -> None:
    """Register `fn` as a plugin's numpy reference (see `impl`)."""
    if not callable(fn):
        raise PluginError(f"{label(qualified, version)}: the reference must be callable, got "
                          f"{fn!r}")
    params = inspect.signature(fn).parameters
    fills = "outputs" in params
    takes_stream = "stream" in params
    takes_tactic = "tactic" in params

    def reference(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any],
                  out_shapes: Sequence[Sequence[int]], out_dtypes: Sequence[str]
                  ) -> list[np.ndarray]:
        extra: dict[str, Any] = {}
        if takes_stream:
            extra["stream"] = 0
        if takes_tactic:
            extra["tactic"] = 0
        if fills:
            outputs = tuple(np.zeros(tuple(s), np.dtype(d))
                            for s, d in zip(out_shapes, out_dtypes, strict=True))
            fn(*inputs, **attrs, outputs=outputs, **extra)
            return list(outputs)
        result = fn(*inputs, **attrs, **extra)
        results = list(result) if isinstance(result, tuple | list) else [result]
        if len(results) != len(out_shapes):
            raise PluginError(f"{label(qualified, version)}: its reference returned "
                              f"{len(results)} output(s), the plan has {len(out_shapes)}")
        return [np.asarray(r) for r in results]

    definition(qualified, version, create=True).reference = reference  # type: ignore[union-attr]


def reference_of(qualified: str, version: str, where: str = "") -> Callable[..., list]:
    """The registered numpy reference; PluginError saying how to register it where there is
    none (a plan carries no Python code)."""
    found = definition(qualified, version)
    if found is None or found.reference is None:
        others = [v for v in versions(qualified) if v != version and
                  _PLUGINS[(*split_name(qualified), v)].reference is not None]
        hint = f" (registered versions: {', '.join(others)})" if others else ""
        raise PluginError(
            f"{where + ': ' if where else ''}{label(qualified, version)} has no numpy reference "
            f"registered in this process{hint}; a plan carries no Python code, so to run it on "
            f"the CPU register one before loading: @ember.runtime.plugins.impl("
            f"\"{qualified}\", version=\"{version}\") on a function of the inputs and "
            "attributes (the ember command: --plugins FILE.py)")
    return found.reference


# -- the CPU executor's kernel -------------------------------------------------------------------

def attribute_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """A plugin step's attributes as the plugin's functions take them (the `arrays` ones as
    numpy arrays of their dtype)."""
    attrs = dict(params.get("attrs") or {})
    for key, dtype in (params.get("arrays") or {}).items():
        attrs[key] = np.asarray(attrs[key], dtype=np.dtype(dtype))
    return attrs


def plugin_of(params: Mapping[str, Any], where: str) -> tuple[str, str]:
    """A plugin step's (name, version); PlanError where the plan does not say them."""
    qualified, version = params.get("plugin"), params.get("version")
    attrs, arrays = params.get("attrs"), params.get("arrays", {})
    if not (isinstance(qualified, str) and isinstance(version, str) and isinstance(attrs, dict)
            and isinstance(arrays, dict)):
        raise PlanError(f"{where}: a plugin step needs 'plugin' and 'version' (strings) and "
                        "'attrs' (an object)")
    return qualified, version


def check_reference(step: Mapping[str, Any], where: str) -> None:
    """PluginError unless the plugin of a plugin step has its numpy reference here."""
    reference_of(*plugin_of(step.get("params") or {}, where), where)


def run_plugin(inputs: list[np.ndarray], params: dict) -> list[np.ndarray]:
    """KERNELS["plugin"]: the step's plugin's numpy reference on the inputs."""
    qualified, version = plugin_of(params, "a plugin step")
    fn = reference_of(qualified, version)
    outs = fn(inputs, attribute_values(params), params["out_shapes"], params["out_dtypes"])
    results = []
    for i, (o, shape, dtype) in enumerate(zip(outs, params["out_shapes"], params["out_dtypes"],
                                              strict=True)):
        o = np.asarray(o)
        if shape is not None and None not in shape and o.shape != tuple(shape):
            raise PluginError(f"{label(qualified, version)}: its reference gave output #{i} "
                              f"of shape {list(o.shape)}, the plan's is {list(shape)}")
        results.append(o.astype(np.dtype(dtype), copy=False))
    return results


KERNELS = {"plugin": run_plugin}

__all__ = ["DEFAULT_VERSION", "KERNELS", "REQUIRED", "PluginDefinition", "check_reference",
           "definition", "definitions", "deregister", "impl", "label", "plugin_of",
           "qualified_name", "reference_of", "register_reference", "run_plugin", "split_name",
           "versions"]
