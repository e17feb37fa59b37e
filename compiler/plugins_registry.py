"""TensorRT's classic plugin registry over ember's plugins: `get_plugin_registry()`, creators
(`get_creator(name, version, namespace).create_plugin(name, PluginFieldCollection)`) and the
plugin objects `network.add_plugin_v3` takes. A creator's fields are the attributes of the
plugin's shape function (compiler/plugins.py); creators of Python classes are refused, since a
plan carries no Python code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ember.compiler.plugins import _SIGNATURES, plugin_attributes
from ember.errors import UnsupportedError
from ember.runtime import plugins as _registry
from ember.runtime.plugins import split_name


class PluginFieldType(enum.IntEnum):
    """TensorRT's PluginFieldType, numbered as TensorRT numbers it."""

    FLOAT16 = 0
    FLOAT32 = 1
    FLOAT64 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    CHAR = 6
    DIMS = 7
    UNKNOWN = 8
    BF16 = 9
    INT64 = 10
    FP8 = 11
    INT4 = 12


_FIELD_DTYPES = {PluginFieldType.FLOAT16: np.float16, PluginFieldType.FLOAT32: np.float32,
                 PluginFieldType.FLOAT64: np.float64, PluginFieldType.INT8: np.int8,
                 PluginFieldType.INT16: np.int16, PluginFieldType.INT32: np.int32,
                 PluginFieldType.INT64: np.int64, PluginFieldType.CHAR: np.uint8}


class TensorRTPhase(enum.IntEnum):
    BUILD = 0
    RUNTIME = 1


class PluginField:
    """One attribute for a creator (TensorRT's PluginField): a name, its data (a numpy array)
    and its type."""

    def __init__(self, name: str = "", data: Any = None,
                 type: PluginFieldType = PluginFieldType.UNKNOWN) -> None:
        self.name = name
        self.type = PluginFieldType(type)
        if data is not None and self.type in _FIELD_DTYPES:
            data = np.asarray(data, dtype=_FIELD_DTYPES[self.type])
        elif data is not None and self.type == PluginFieldType.UNKNOWN:
            data = np.asarray(data)
        elif data is not None:
            raise UnsupportedError(f"PluginField '{name}': type {self.type.name} is not "
                                   "supported")
        self.data = data

    @property
    def size(self) -> int:
        return 0 if self.data is None else int(np.asarray(self.data).size)


class PluginFieldCollection(list):
    """A list of PluginFields (TensorRT's PluginFieldCollection)."""


class PluginV3:
    """A plugin instance (TensorRT's IPluginV3 as a creator makes it): the plugin's name,
    version, namespace and attribute values, for `network.add_plugin_v3`."""

    def __init__(self, qualified: str, version: str, attrs: Mapping[str, Any],
                 instance_name: str = "") -> None:
        self.plugin_namespace, self.plugin_name = split_name(qualified)
        self.plugin_version = version
        self.name = instance_name
        self.attrs = dict(attrs)

    @property
    def qualified(self) -> str:
        return _registry.qualified_name(self.plugin_namespace, self.plugin_name)

    def __repr__(self) -> str:
        return f"<PluginV3 {self.qualified} v{self.plugin_version} {self.attrs}>"


class PluginCreator:
    """TensorRT's plugin creator for a registered plugin: its fields, and `create_plugin`."""

    def __init__(self, found: _registry.PluginDefinition) -> None:
        self._def = found
        self.name = found.name
        self.plugin_version = found.version
        self.plugin_namespace = found.namespace

    @property
    def field_names(self) -> PluginFieldCollection:
        sig = _SIGNATURES.get((self._def.qualified, self._def.version))
        kinds = {"int": PluginFieldType.INT64, "float": PluginFieldType.FLOAT32,
                 "str": PluginFieldType.CHAR, "bool": PluginFieldType.INT8,
                 **{f"array[{np.dtype(d).name}]": t for t, d in _FIELD_DTYPES.items()
                    if t != PluginFieldType.CHAR}}
        return PluginFieldCollection(
            PluginField(k, None, kinds.get(sig.kinds[k], PluginFieldType.UNKNOWN))
            for k in (sig.attributes if sig else {}))

    def create_plugin(self, name: str, field_collection: Iterable[PluginField],
                      phase: TensorRTPhase = TensorRTPhase.BUILD) -> PluginV3:
        given = {}
        for f in field_collection:
            data = f.data
            if f.type == PluginFieldType.CHAR and data is not None:
                data = bytes(np.asarray(data, np.uint8)).decode().rstrip("\0")
            given[f.name] = data
        attrs, arrays = plugin_attributes(self._def.qualified, self._def.version, given,
                                          f"create_plugin('{name}')")
        return PluginV3(self._def.qualified, self._def.version,
                        _registry.attribute_values({"attrs": attrs, "arrays": arrays}), name)


class PluginRegistry:
    """TensorRT's plugin registry over ember's registered plugins (`get_plugin_registry()`)."""

    @property
    def all_creators(self) -> list[PluginCreator]:
        return [PluginCreator(d) for d in _registry.definitions() if d.describe is not None]

    plugin_creator_list = all_creators

    def get_creator(self, name: str, version: str, namespace: str = "") -> PluginCreator | None:
        found = _registry.definition(_registry.qualified_name(namespace, name), str(version))
        return PluginCreator(found) if found is not None and found.describe is not None else None

    get_plugin_creator = get_creator

    def register_creator(self, creator: Any, namespace: str = "") -> bool:
        raise UnsupportedError("PluginRegistry.register_creator: ember's plugins are Python "
                               "functions registered with ember.plugin.register / aot_impl / "
                               "impl (a plan carries no Python code, so no creator objects)")

    def deregister_creator(self, creator: PluginCreator) -> bool:
        return _registry.deregister(creator._def.qualified, creator._def.version)

    def load_library(self, path: str) -> Any:
        raise UnsupportedError(f"PluginRegistry.load_library('{path}'): ember loads no shared "
                               "libraries (register plugins with ember.plugin)")


_REGISTRY = PluginRegistry()


def get_plugin_registry() -> PluginRegistry:
    return _REGISTRY

__all__ = ["PluginCreator", "PluginField", "PluginFieldCollection", "PluginFieldType",
           "PluginRegistry", "PluginV3", "TensorRTPhase", "get_plugin_registry"]
