"""The ONNX parser's side of plugins: which registered plugin an unknown node is, and its
`nn.plugin` op.

A node is looked up as plugin `"<domain>::<op type>"` (TensorRT's spelling for a default-domain
node: op type `X` with attribute `plugin_namespace`), at the version its `plugin_version`
attribute names (as TensorRT's parser reads it), else its domain's opset version, else "1".
Only nodes ONNX does not define are looked up: a plugin never replaces a standard operator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper
from xdsl.ir import SSAValue

from ember.compiler.plugins import plugin_attributes, plugin_outputs
from ember.dialects.dtypes import element_type_from_numpy
from ember.dialects.nn.base import build, dtype_name
from ember.dialects.nn.plugin import PluginOp
from ember.dialects.origin import set_origin
from ember.dialects.tensor_types import shape_of, tensor_type
from ember.errors import EmberError, PluginError
from ember.runtime import plugins

_DEFAULT_DOMAINS = ("", "ai.onnx")
_LOOKUP_ATTRIBUTES = ("plugin_version", "plugin_namespace")


@dataclass
class PluginNode:
    """A node that is a registered plugin: its name, version and raw attribute values."""

    qualified: str
    version: str
    given: dict[str, Any]


def _value(attr: AttributeProto) -> Any:
    if attr.type == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
                for v in value]
    return value


def lookup(node: onnx.NodeProto, opsets: Mapping[str, int]) -> PluginNode | str:
    """The registered plugin this node names, or why there is none (text for an error)."""
    attrs = {a.name: a for a in node.attribute}
    namespace = node.domain if node.domain not in _DEFAULT_DOMAINS else ""
    if not namespace and "plugin_namespace" in attrs:
        namespace = str(_value(attrs["plugin_namespace"]))
    if "plugin_version" in attrs:
        version = str(_value(attrs["plugin_version"]))
    elif namespace and node.domain == namespace and namespace in opsets:
        version = str(opsets[namespace])
    else:
        version = plugins.DEFAULT_VERSION
    qualified = plugins.qualified_name(namespace, node.op_type)
    found = plugins.definition(qualified, version)
    if found is None or found.describe is None:
        others = [v for v in plugins.versions(qualified)
                  if (d := plugins.definition(qualified, v)) and d.describe is not None]
        hint = f"; registered versions: {', '.join(others)}" if others else ""
        return (f"no plugin registered as '{qualified}' version {version}{hint} (register "
                f"one with ember.plugin.register(\"{qualified}\"); the ember command: "
                "--plugins FILE.py)")
    given = {k: _value(a) for k, a in attrs.items() if k not in _LOOKUP_ATTRIBUTES}
    return PluginNode(qualified, version, given)


def node_problems(node: onnx.NodeProto, match: PluginNode) -> list[str]:
    """What is wrong with the node's attributes and inputs as the plugin's."""
    problems = []
    if any(not name for name in node.input):
        problems.append("a plugin's inputs cannot be omitted (an empty input name)")
    try:
        plugin_attributes(match.qualified, match.version, match.given, "the node")
    except EmberError as e:
        problems.append(str(e).removeprefix("the node: "))
    return problems


def plugin_op(node: onnx.NodeProto, match: PluginNode, operands: Sequence[SSAValue]) -> PluginOp:
    """The node's `nn.plugin` op, its result types by the plugin's shape function."""
    where = f"node '{node.name or '<unnamed>'}' ({node.op_type})"
    op = make_plugin_op(match.qualified, match.version, match.given, operands, where,
                        origin=node.name)
    if len(op.results) != len(node.output):
        raise PluginError(f"{where}: {plugins.label(match.qualified, match.version)} has "
                          f"{len(op.results)} output(s), the node {len(node.output)}")
    return op


def make_plugin_op(qualified: str, version: str, given: Mapping[str, Any],
                   operands: Sequence[SSAValue], where: str, origin: str = "") -> PluginOp:
    """An `nn.plugin` of these attribute values on these operands (ranked)."""
    attrs, arrays = plugin_attributes(qualified, version, given, where)
    shapes = []
    for i, v in enumerate(operands):
        shape = shape_of(v)
        if shape is None:
            raise EmberError(f"{where}: input #{i} of {plugins.label(qualified, version)} has "
                             "unknown rank (give the model's inputs shapes)")
        shapes.append(tuple(shape))
    outs = plugin_outputs(qualified, version, shapes, [dtype_name(v.type) for v in operands],
                          attrs, arrays, where)
    props: dict[str, Any] = {"plugin": qualified, "version": version, "attrs": attrs}
    if arrays:
        props["arrays"] = arrays
    op = build(PluginOp, operands, props, result_types=[
        tensor_type(s, element_type_from_numpy(np.dtype(d))) for s, d in outs])
    if origin:
        set_origin(op, [origin])
    return op
