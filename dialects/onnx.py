"""The `onnx` dialect: one op per ONNX operator, generated from ONNX's own schemas (`onnx.defs`).

Import is total and faithful: each operator of the default domain becomes an op whose operands,
results and typed properties are the schema's inputs, outputs and attributes. The newest signature
of an operator is `onnx.<Name>`; an older opset whose inputs or attributes differ gets its own op,
`onnx.<Name>_v<SINCE_VERSION>` (e.g. `onnx.Clip_v6`, whose min/max are attributes). Weights are not
inline: `onnx.weight "name"` refers to a tensor in the module's weight store.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from typing import Any, ClassVar

import onnx.defs
from onnx.defs import OpSchema
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    AttrSizedResultSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    opt_result_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure

from ember.dialects.attributes import attribute_value

_Opt = OpSchema.FormalParameterOption
_AT = OpSchema.AttrType

# ONNX attribute type -> property constraint. GRAPH/TENSORS/SPARSE_TENSOR/TYPE_PROTO attributes make
# an op importable only without them: the importer rejects nodes that set them.
_PROPERTY_TYPE: dict[Any, Any] = {
    _AT.FLOAT: FloatAttr,
    _AT.INT: IntegerAttr,
    _AT.STRING: StringAttr,
    _AT.INTS: DenseArrayBase,
    _AT.FLOATS: DenseArrayBase,
    _AT.STRINGS: ArrayAttr,
    _AT.TENSOR: DenseIntOrFPElementsAttr,
}
SUPPORTED_ATTRIBUTE_TYPES = frozenset(_PROPERTY_TYPE)
_RESERVED = set(dir(IRDLOperation)) | {"name", "traits", "irdl_options"}


def _field(name: str, taken: set[str]) -> str:
    # computed here, after OnnxOp is defined, so its own members are reserved too
    reserved = _RESERVED | set(vars(OnnxOp))
    """A Python field name for an ONNX input/output/attribute name."""
    field = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_") or "value"
    if field[0].isdigit() or keyword.iskeyword(field) or field in reserved:
        field += "_"
    while field in taken:
        field += "_"
    taken.add(field)
    return field


class OnnxOp(IRDLOperation):
    """Base of the generated ops: schema facts, and access to inputs/attributes by ONNX name."""

    ONNX_TYPE: ClassVar[str] = ""
    SINCE_VERSION: ClassVar[int] = 0
    # (onnx name, python field, option) for each formal input and output
    INPUT_SPECS: ClassVar[tuple[tuple[str, str, Any], ...]] = ()
    OUTPUT_SPECS: ClassVar[tuple[tuple[str, str, Any], ...]] = ()
    # onnx attribute name -> (python field, AttrType, required, default python value)
    ATTR_SPECS: ClassVar[dict[str, tuple[str, Any, bool, Any]]] = {}
    # whether the op carries operandSegmentSizes / resultSegmentSizes
    OPERAND_SEGMENTS: ClassVar[bool] = False
    RESULT_SEGMENTS: ClassVar[bool] = False

    def onnx_input(self, name: str) -> SSAValue | None:
        """The value bound to a single or optional formal input, or None when absent."""
        for onnx_name, field, option in self.INPUT_SPECS:
            if onnx_name == name:
                value = getattr(self, field)
                if option == _Opt.Variadic:
                    raise TypeError(f"{self.ONNX_TYPE} input {name} is variadic")
                return value
        return None

    def onnx_variadic_input(self) -> Sequence[SSAValue]:
        onnx_name, field, option = self.INPUT_SPECS[-1]
        assert option == _Opt.Variadic, f"{self.ONNX_TYPE} has no variadic input"
        return getattr(self, field)

    def has_attr(self, name: str) -> bool:
        spec = self.ATTR_SPECS.get(name)
        return spec is not None and getattr(self, spec[0]) is not None

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute's value as Python data; the schema default, then `default`, if unset."""
        spec = self.ATTR_SPECS.get(name)
        if spec is None:
            return default
        value = getattr(self, spec[0])
        if value is None:
            return spec[3] if spec[3] is not None else default
        return attribute_value(value)

    @property
    def node_name(self) -> str:
        attr = self.attributes.get("ember.node")
        return attr.data if isinstance(attr, StringAttr) else ""


def _default(attr: OpSchema.Attribute) -> Any:
    value = attr.default_value
    if value is None or not value.ListFields():
        return None
    import onnx.helper

    data = onnx.helper.get_attribute_value(value)
    if isinstance(data, bytes):
        return data.decode()
    if isinstance(data, list):
        return [d.decode() if isinstance(d, bytes) else d for d in data]
    return data


def _signature(schema: OpSchema) -> tuple:
    return (
        tuple((i.name, i.option) for i in schema.inputs),
        tuple((o.name, o.option) for o in schema.outputs),
        tuple(sorted((a.name, a.type) for a in schema.attributes.values())),
    )


def _make_op(schema: OpSchema, op_name: str) -> type[OnnxOp]:
    taken: set[str] = set()
    body: dict[str, Any] = {"name": op_name, "ONNX_TYPE": schema.name,
                            "SINCE_VERSION": schema.since_version}
    operand_for = {_Opt.Single: operand_def, _Opt.Optional: opt_operand_def,
                   _Opt.Variadic: var_operand_def}
    result_for = {_Opt.Single: result_def, _Opt.Optional: opt_result_def,
                  _Opt.Variadic: var_result_def}
    inputs, outputs, attrs = [], [], {}
    for p in schema.inputs:
        field = _field(p.name, taken)
        body[field] = operand_for[p.option]()
        inputs.append((p.name, field, p.option))
    for p in schema.outputs:
        field = _field(p.name, taken)
        body[field] = result_for[p.option]()
        outputs.append((p.name, field, p.option))
    for a in schema.attributes.values():
        field = _field(a.name, taken)
        constraint = _PROPERTY_TYPE.get(a.type, Attribute)
        if a.required and a.type in _PROPERTY_TYPE:
            body[field] = prop_def(constraint, prop_name=a.name)
        else:
            body[field] = opt_prop_def(constraint, prop_name=a.name)
        attrs[a.name] = (field, a.type, a.required, _default(a))
    options = []
    body["OPERAND_SEGMENTS"] = sum(o != _Opt.Single for _, _, o in inputs) > 1
    body["RESULT_SEGMENTS"] = sum(o != _Opt.Single for _, _, o in outputs) > 1
    if body["OPERAND_SEGMENTS"]:
        options.append(AttrSizedOperandSegments(as_property=True))
    if body["RESULT_SEGMENTS"]:
        options.append(AttrSizedResultSegments(as_property=True))
    body["irdl_options"] = tuple(options)
    body["INPUT_SPECS"] = tuple(inputs)
    body["OUTPUT_SPECS"] = tuple(outputs)
    body["ATTR_SPECS"] = attrs
    body["__annotations__"] = {k: ClassVar for k in _CLASS_CONSTANTS}
    if schema.name not in _IMPURE:
        body["traits"] = traits_def(Pure())
    cls_name = op_name.removeprefix("onnx.").replace(".", "_") + "Op"
    return irdl_op_definition(type(cls_name, (OnnxOp,), body))


_CLASS_CONSTANTS = ("ONNX_TYPE", "SINCE_VERSION", "INPUT_SPECS", "OUTPUT_SPECS", "ATTR_SPECS",
                    "OPERAND_SEGMENTS", "RESULT_SEGMENTS")

# Ops with a side effect or randomness must not be merged by CSE or folded away.
_IMPURE = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
           "Bernoulli"}


def _generate() -> tuple[list[type[OnnxOp]], dict[tuple[str, int], type[OnnxOp]]]:
    by_name: dict[str, list[OpSchema]] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain == "":  # deprecated schemas too: older opsets still use them
            by_name.setdefault(s.name, []).append(s)
    ops: list[type[OnnxOp]] = []
    by_version: dict[tuple[str, int], type[OnnxOp]] = {}
    for name in sorted(by_name):
        made: dict[tuple, type[OnnxOp]] = {}
        for schema in sorted(by_name[name], key=lambda s: -s.since_version):
            sig = _signature(schema)
            if sig not in made:
                op_name = f"onnx.{name}" if not made else f"onnx.{name}_v{schema.since_version}"
                made[sig] = _make_op(schema, op_name)
                ops.append(made[sig])
            by_version[(name, schema.since_version)] = made[sig]
    return ops, by_version


GENERATED_OPS, _BY_VERSION = _generate()


def op_class(op_type: str, opset: int) -> type[OnnxOp] | None:
    """The op class for an ONNX operator as defined at `opset` (None: unknown operator)."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    return _BY_VERSION.get((op_type, schema.since_version))


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named tensor of the module's weight store (an ONNX initializer or a large Constant)."""

    name = "onnx.weight"
    ref = prop_def(StringAttr)
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$ref attr-dict `:` type($result)"


ONNX = Dialect("onnx", [WeightOp, *GENERATED_OPS], [])
