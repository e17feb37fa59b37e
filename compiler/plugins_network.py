"""The network API's plugin layer (TensorRT's IPluginV3Layer): `add_plugin_v3` with a plugin a
creator made, `add_plugin` with `ember.plugin.op.<namespace>.<name>(...)`. The layer becomes a
node of the plugin's domain (op type = the plugin's name), which the ONNX parser finds again in
the registry; its outputs' types go into the graph so shape inference continues past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from onnx import helper

from ember.compiler.network_base import Emitter, Layer, Tensor
from ember.compiler.network_types import LayerType
from ember.compiler.plugins import PluginCall, plugin_attributes, plugin_outputs
from ember.compiler.plugins_registry import PluginV3
from ember.errors import EmberError, UnsupportedError
from ember.runtime import plugins

if TYPE_CHECKING:
    from ember.compiler.network import NetworkDefinition


class PluginV3Layer(Layer):
    TYPE = LayerType.PLUGIN_V3
    KIND = "plugin"
    __slots__ = ("_plugin",)

    def get_plugin(self) -> PluginV3:
        return self._plugin

    def _outputs_now(self) -> list[tuple[tuple, str]]:
        return _describe(self._plugin, self._inputs, self._what())

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        p = self._plugin
        attrs = dict(p.attrs)
        version = p.plugin_version
        namespace = p.plugin_namespace
        if namespace and version.isdigit() and g.opsets.get(namespace, int(version)) == \
                int(version):
            g.opsets[namespace] = int(version)
        elif version != plugins.DEFAULT_VERSION or namespace:
            attrs["plugin_version"] = version  # TensorRT's parser reads it so, as does ember's
        g.node(p.plugin_name, ins, outs, self.name, domain=namespace, **attrs)
        for name, (shape, dtype) in zip(outs, self._outputs_now(), strict=True):
            g.value_infos.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                [d if isinstance(d, int) else None for d in shape]))


def _describe(plugin: PluginV3, inputs: Sequence[Tensor | None], what: str
              ) -> list[tuple[tuple, str]]:
    """The outputs' (shape, dtype) by the plugin's shape function at the inputs' current
    shapes (a dynamic dim is "?")."""
    if any(t is None for t in inputs):
        raise EmberError(f"{what}: a plugin's inputs cannot be omitted")
    shapes = [tuple(d if d >= 0 else "?" for d in t.shape) for t in inputs]  # type: ignore
    dtypes = [np.dtype(t.dtype).name for t in inputs]  # type: ignore[union-attr]
    attrs, arrays = plugin_attributes(plugin.qualified, plugin.plugin_version, plugin.attrs, what)
    return plugin_outputs(plugin.qualified, plugin.plugin_version, shapes, dtypes, attrs, arrays,
                          what)


def _layer(network: NetworkDefinition, inputs: Sequence[Tensor], plugin: PluginV3
           ) -> PluginV3Layer:
    inputs = [network._own(t, f"{plugin.qualified} input #{i}") for i, t in enumerate(inputs)]
    outs = _describe(plugin, inputs, f"plugin layer ({plugin.qualified})")
    layer = PluginV3Layer.__new__(PluginV3Layer)
    layer._plugin = plugin
    Layer.__init__(layer, network, inputs, num_outputs=len(outs))
    return layer


def plugin_v3_layer(network: NetworkDefinition, inputs: Sequence[Tensor],
                    shape_inputs: Sequence[Tensor], plugin: Any) -> PluginV3Layer:
    if not isinstance(plugin, PluginV3):
        raise UnsupportedError(f"add_plugin_v3: {plugin!r} is not a plugin an ember creator "
                               "made (get_plugin_registry().get_creator(...).create_plugin)")
    if list(shape_inputs):
        raise UnsupportedError(f"add_plugin_v3 ({plugin.qualified}): shape inputs are not "
                               "supported (ember folds shape computations at build time)")
    return _layer(network, inputs, plugin)


def plugin_call_layer(network: NetworkDefinition, call: Any, aot: bool | None) -> PluginV3Layer:
    if not isinstance(call, PluginCall):
        raise UnsupportedError(f"add_plugin: {call!r} is not a plugin call (give "
                               "ember.plugin.op.<namespace>.<name>(inputs..., attrs...))")
    if aot is False:
        raise UnsupportedError(f"add_plugin({call.qualified}, aot=False): a Python "
                               "implementation at run time is not supported (a plan carries no "
                               "Python); ember compiles the plugin's aot_impl kernel")
    return _layer(network, call.inputs, PluginV3(call.qualified, call.version, call.attrs))
