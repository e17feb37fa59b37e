"""ONNX operators defined as functions of other operators, expanded where ember has no
legalizer of its own (as onnxruntime runs them): Attention, RMSNormalization, the loss ops,
Swish, MeanVarianceNormalization, the window functions and the model's own local functions.

ONNX's schemas carry these bodies (a fixed body, or one built for the node's attributes and
input types: a "context-dependent" function). Each node to expand gets its body as a
model-local function of its own overload, and `onnx.inliner` replaces the nodes by the bodies,
with fresh value names. The body's nodes are named `<node name>::<op type>_<i>`, so ember's
messages, origins and per-layer tools still name the ONNX node a kernel came from, and a
per-layer precision on the node applies to its body (passes/precision_policy.py). Expansion
repeats while a body holds further expandable nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
import onnx.inliner
from onnx import FunctionProto, ModelProto, NodeProto, TypeProto

from ember.dialects.origin import FUNCTION_BODY

_DEFAULT_DOMAINS = ("", "ai.onnx")
# domains whose ops' schemas (and function bodies) onnx defines beside the default one
_SCHEMA_DOMAINS = (*_DEFAULT_DOMAINS, "ai.onnx.preview")
_MAX_DEPTH = 4  # bodies within bodies (a loss op's body uses another function op, ...)


def expand_functions(model: ModelProto, native: Callable[[str], bool]) -> ModelProto:
    """`model` with each node of an onnx-defined domain (the default one, ai.onnx.preview) that
    `native(op_type)` rejects and whose schema defines a function replaced by that function's
    body, and the model's local functions
    inlined; the model itself when there is nothing to expand. A node whose body needs input
    types shape inference cannot give stays as it is (the legalizer then names it)."""
    for _ in range(_MAX_DEPTH):
        opset = _default_opset(model)  # inlined bodies may raise it
        candidates = [i for i, node in enumerate(model.graph.node)
                      if node.domain in _SCHEMA_DOMAINS and not (
                          node.domain in _DEFAULT_DOMAINS and native(node.op_type))
                      and _defines_body(node, _schema_opset(model, node.domain))]
        if not candidates and not model.functions:
            return model
        model = _copy(model)  # the caller's model is never changed
        types = _value_types(model) if candidates else {}
        bodies: list[FunctionProto] = []
        for index in candidates:
            node = model.graph.node[index]
            at = _schema_opset(model, node.domain)
            body = _body(node, at, opset, types)
            if body is None:
                continue
            _fill_defaults(node, at)
            body.overload = node.overload = f"ember_expand_{index}"
            _name_nodes(body, node)
            bodies.append(body)
        if not bodies and not model.functions:
            return model
        model.functions.extend(bodies)
        model.ir_version = max(model.ir_version, 10)  # overloads: IR version 10
        model = onnx.inliner.inline_local_functions(model)
        if not bodies:
            return model
    return model


def _domain(domain: str) -> str:
    return "" if domain in _DEFAULT_DOMAINS else domain


def _schema_opset(model: ModelProto, domain: str) -> int:
    """The version of `domain` the model imports (the default domain's: `_default_opset`)."""
    if domain in _DEFAULT_DOMAINS:
        return _default_opset(model)
    return next((e.version for e in model.opset_import if e.domain == domain), 1)


def _defines_body(node: NodeProto, opset: int) -> bool:
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, _domain(node.domain))
    except onnx.defs.SchemaError:
        return False
    return schema.has_function or schema.has_context_dependent_function


def _default_opset(model: ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return entry.version
    return onnx.defs.onnx_opset_version()


def _copy(model: ModelProto) -> ModelProto:
    copy = ModelProto()
    copy.CopyFrom(model)
    return copy


def _value_types(model: ModelProto) -> dict[str, TypeProto]:
    """The type of each value shape inference can give (inputs and initializers included)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a model inference rejects keeps what it declares
        inferred = model
    graph = inferred.graph
    types = {vi.name: vi.type for vi in (*graph.input, *graph.value_info, *graph.output)}
    for init in graph.initializer:
        types.setdefault(init.name, onnx.helper.make_tensor_type_proto(
            init.data_type, list(init.dims)))
    return types


def _body(node: NodeProto, opset: int, default_opset: int,
          types: dict[str, TypeProto]) -> FunctionProto | None:
    """The function body ONNX's schema of `node` defines at `opset` (of its domain), its
    default-domain nodes read at the model's `default_opset`; or None."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, _domain(node.domain))
    except onnx.defs.SchemaError:
        return None
    if schema.has_function:
        versions = [v for v in schema.function_opset_versions if v <= opset]
        if not versions:
            return None
        body = _proto(schema.get_function_with_opset_version(max(versions)))
    elif schema.has_context_dependent_function:
        versions = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
        if not versions:
            return None
        inputs = []
        for name in node.input:
            if name and name not in types:
                return None
            inputs.append(types[name].SerializeToString() if name else b"")
        try:
            data = schema.get_context_dependent_function_with_opset_version(
                max(versions), node.SerializeToString(), inputs)
        except Exception:  # noqa: BLE001 - onnx refuses to build a body for these types
            return None
        if not data:
            return None
        body = _proto(data)
    else:
        return None
    copy = FunctionProto()
    copy.CopyFrom(body)
    copy.name, copy.domain = node.op_type, node.domain
    # a body defined at an older opset is read at the model's (onnx.inliner inlines only
    # bodies that import the model's opset); the importer checks its nodes at that opset
    for entry in copy.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            entry.version = default_opset
    return copy


def _fill_defaults(node: NodeProto, opset: int) -> None:
    """Give `node` the schema's default of each attribute it omits: a body refers to its
    node's attributes by name, and the inliner drops a reference to an absent one."""
    schema = onnx.defs.get_schema(node.op_type, opset, _domain(node.domain))
    given = {a.name for a in node.attribute}
    for name, spec in schema.attributes.items():
        if name not in given and spec.default_value.type != onnx.AttributeProto.UNDEFINED:
            node.attribute.append(spec.default_value)


def _proto(body: bytes | FunctionProto) -> FunctionProto:
    """onnx's schema methods give serialized bodies (bytes) or protos, by version."""
    return FunctionProto.FromString(body) if isinstance(body, bytes) else body


def _name_nodes(body: FunctionProto, node: NodeProto) -> None:
    owner = node.name or node.op_type
    for i, inner in enumerate(body.node):
        inner.name = f"{owner}{FUNCTION_BODY}{inner.op_type}_{i}"
