"""ONNX ModelProto (or a path, or bytes) -> a `builtin.module` of `onnx` dialect ops.

The module holds one `func.func @main` whose arguments and results carry the graph's input and
output names (`ember.name`). Initializers, and Constant tensors too large to read inline, go to
the module's weight store and appear as `onnx.weight "name"`. Everything the model does that ember
cannot import is collected and raised at once, as one `ModelImportError` naming every node.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, ModelProto, TypeProto, numpy_helper
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    NoneType,
    StringAttr,
    UnrankedTensorType,
    f32,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Region, SSAValue

from ember.compiler import declared_shapes, plugins_onnx
from ember.dialects import onnx as onnx_dialect
from ember.dialects.constants import dense_from_numpy
from ember.dialects.dtypes import (
    element_type_from_numpy,
    element_type_from_onnx,
    is_supported_onnx_dtype,
    onnx_dtype_name,
)
from ember.dialects.tensor_types import UNKNOWN, tensor_type
from ember.dialects.weights import WeightStore, attach_weights
from ember.errors import ModelImportError, NodeProblem

_Opt = onnx.defs.OpSchema.FormalParameterOption
# Constant tensors with more elements than this become weights rather than inline attributes.
INLINE_CONSTANT_LIMIT = 16
_DEFAULT_DOMAINS = ("", "ai.onnx")
# nodes ember's own lowerings write (compiler/onnx_control.py): `Assert`, one bool input, no
# output, a `message`: imported as nn.assert
INTERNAL_DOMAIN = "ember.internal"


def load_model(model: ModelProto | str | os.PathLike | bytes) -> tuple[ModelProto, str]:
    """A ModelProto with external data loaded, and a name for it to use in messages."""
    if isinstance(model, ModelProto):
        return model, model.graph.name or "model"
    if isinstance(model, bytes | bytearray):
        if not model:
            raise ModelImportError("no model: 0 bytes", "model bytes")
        try:
            return onnx.load_from_string(bytes(model)), "model bytes"
        except Exception as e:  # protobuf raises its own DecodeError types
            raise ModelImportError(f"not an ONNX model: {e}", "model bytes") from None
    path = Path(model)
    if not path.is_file():
        raise ModelImportError(f"no such file: {path}", str(path))
    if path.stat().st_size == 0:
        raise ModelImportError("the file is empty (0 bytes)", str(path))
    try:
        return onnx.load(str(path), load_external_data=True), str(path)
    except Exception as e:
        raise ModelImportError(f"cannot read the model: {e}", str(path)) from None


def default_opset(model: ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return entry.version
    return 1 if model.ir_version < 3 else onnx.defs.onnx_opset_version()


def import_onnx(model: ModelProto | str | os.PathLike | bytes) -> ModuleOp:
    """Import an ONNX model into the `onnx` dialect (see the module docstring)."""
    from ember.compiler.onnx_control import lower_control_flow
    from ember.compiler.onnx_functions import expand_functions
    from ember.compiler.onnx_sequences import SEQUENCE_OPS, has_sequences, lower_sequences
    from ember.passes.convert_onnx_to_nn import LEGALIZERS

    proto, source = load_model(model)
    if (why := _model_problem(proto, default_opset(proto))):
        raise ModelImportError(why, source)
    try:  # SequenceMap's body is inlined per element by lower_sequences, not as a Loop
        proto = expand_functions(
            proto, native=lambda op: op in LEGALIZERS or op in SEQUENCE_OPS)
    except Exception as e:  # noqa: BLE001 - a malformed model onnx's inliner trips over is
        # imported unexpanded: the importer's checks then name what is wrong; said, not hidden
        warnings.warn(f"{source}: ONNX function ops were not expanded into their bodies "
                      f"({type(e).__name__}: {e})", stacklevel=2)

    def control(proto: ModelProto) -> ModelProto:
        try:
            return lower_control_flow(proto)
        except Exception as e:  # noqa: BLE001 - as above: the importer then names the If / Loop
            warnings.warn(f"{source}: If and Loop nodes were not lowered (constant conditions, "
                          f"unrolled loops, if-conversion: {type(e).__name__}: {e})",
                          stacklevel=3)
            return proto

    proto = control(proto)
    if has_sequences(proto):  # lowered into tensors, alternating with control flow's lowering
        proto = lower_sequences(proto, control, source)
    return _Importer(proto, source).run()


def _type_problem(tp: TypeProto) -> str | None:
    kind = tp.WhichOneof("value")
    if kind != "tensor_type":
        return f"{kind or 'untyped'} values are not supported (only tensors)"
    if not is_supported_onnx_dtype(tp.tensor_type.elem_type):
        return f"element type {onnx_dtype_name(tp.tensor_type.elem_type)} is not supported"
    return None


def _xdsl_type(tp: TypeProto) -> Attribute:
    tensor = tp.tensor_type
    element = element_type_from_onnx(tensor.elem_type)
    if not tensor.HasField("shape"):
        return tensor_type(None, element)
    dims: list[int | str] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or UNKNOWN)
    return tensor_type(dims, element)


def _property(attr: AttributeProto) -> Attribute:
    A = AttributeProto
    if attr.type == A.INT:
        return IntegerAttr(attr.i, i64)
    if attr.type == A.FLOAT:
        return FloatAttr(float(attr.f), f32)
    if attr.type == A.STRING:
        return StringAttr(attr.s.decode("utf-8", errors="replace"))
    if attr.type == A.INTS:
        return DenseArrayBase.from_list(i64, list(attr.ints))
    if attr.type == A.FLOATS:
        return DenseArrayBase.from_list(f32, [float(x) for x in attr.floats])
    if attr.type == A.STRINGS:
        return ArrayAttr([StringAttr(s.decode("utf-8", errors="replace")) for s in attr.strings])
    if attr.type == A.TENSOR:
        return dense_from_numpy(numpy_helper.to_array(attr.t))
    raise AssertionError("checked by _node_problems")


class _Importer:
    def __init__(self, model: ModelProto, source: str) -> None:
        self.model = model
        self.source = source
        self.opset = default_opset(model)
        self.store = WeightStore()
        self.values: dict[str, SSAValue] = {}
        self.types: dict[str, TypeProto] = {}
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.problems: list[NodeProblem] = []
        self.opsets = {e.domain: e.version for e in model.opset_import}
        self.plugins: dict[tuple, plugins_onnx.PluginNode] = {}  # node outputs -> plugin

    # -- checks --------------------------------------------------------------------------------
    def _collect_types(self) -> None:
        graph = self.model.graph
        negative = _negative_dims(graph)
        for name, dims in negative:
            self.problems.append(NodeProblem(name, "tensor", f"has a negative dim in its "
                                                             f"declared shape {dims}"))
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model, data_prop=True).graph \
                if inference_is_safe(graph) else graph
        except Exception:  # inference is a help, not a requirement: fall back to declared types
            inferred = graph
        for vi in [*graph.value_info, *graph.input, *graph.output,
                   *inferred.value_info, *inferred.input, *inferred.output]:
            kind = vi.type.WhichOneof("value")
            if kind is None or (kind == "tensor_type" and vi.type.tensor_type.elem_type == 0):
                continue  # no type, or UNDEFINED element type: as good as none
            has_shape = kind == "tensor_type" and vi.type.tensor_type.HasField("shape")
            if vi.name not in self.types or has_shape:
                self.types[vi.name] = vi.type
        for t in graph.initializer:
            tp = TypeProto()
            tp.tensor_type.elem_type = t.data_type
            tp.tensor_type.shape.dim.extend(
                [TypeProto.Tensor().shape.dim.add(dim_value=d) for d in t.dims]
            )
            self.types[t.name] = tp
            self.initializers[t.name] = t
            if (why := _tensor_problem(t)):
                self.problems.append(NodeProblem(t.name, "initializer", why))
        for s in graph.sparse_initializer:
            self.problems.append(NodeProblem(s.values.name, "initializer",
                                             "sparse initializers are not supported"))
        declared_shapes.refine(graph, self.types)  # outputs' declared shapes, carried back

    def _node_problems(self, node: onnx.NodeProto, defined: set[str]) -> list[str]:
        reasons = []
        if (why := _names_problem([node.name, node.op_type, node.domain, *node.input,
                                   *node.output, *(a.name for a in node.attribute)])):
            return [why]
        if node.domain == INTERNAL_DOMAIN:
            if node.op_type != "Assert" or len(node.input) != 1 or node.output or [
                    (a.name, a.type) for a in node.attribute] != [("message",
                                                                    AttributeProto.STRING)]:
                return [f"'{INTERNAL_DOMAIN}' nodes are ember's own: only Assert (one input, "
                        "no output, a string message)"]
            return self._input_problems(node, defined)
        cls = None if node.domain not in _DEFAULT_DOMAINS else \
            onnx_dialect.op_class(node.op_type, self.opset)
        if cls is None:  # not an ONNX operator: a registered plugin, or an error naming it
            match = plugins_onnx.lookup(node, self.opsets)
            if isinstance(match, str):
                if node.domain not in _DEFAULT_DOMAINS:
                    return [f"operator domain '{node.domain}' is not supported ({match})"]
                return [f"unknown operator at opset {self.opset} ({match})"]
            self.plugins[tuple(node.output)] = match
            return self._input_problems(node, defined) or plugins_onnx.node_problems(node, match)
        for attr in node.attribute:
            if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                reasons.append(f"subgraph attribute '{attr.name}' is not supported")
            elif attr.name not in cls.ATTR_SPECS:
                reasons.append(f"attribute '{attr.name}' is not defined for {node.op_type}")
            elif attr.type not in _ATTRIBUTE_TYPES:
                reasons.append(f"attribute '{attr.name}' of type "
                               f"{_attribute_type_name(attr.type)} is not supported")
            elif attr.ref_attr_name:
                reasons.append(f"attribute '{attr.name}' refers to a function attribute")
            elif (why := _attribute_problem(attr, cls.ATTR_SPECS[attr.name][1], node.op_type)):
                reasons.append(why)
        reasons += self._input_problems(node, defined)
        if not reasons:
            reasons += self._arity_problems(node, cls)
        return reasons

    def _input_problems(self, node: onnx.NodeProto, defined: set[str]) -> list[str]:
        reasons = []
        for name in node.input:
            if name and name not in defined:
                reasons.append(f"input '{name}' is not produced by any earlier node or input")
            elif name in self.types and (why := _type_problem(self.types[name])):
                reasons.append(f"input '{name}': {why}")
        for name in node.output:
            if name in self.types and (why := _type_problem(self.types[name])):
                reasons.append(f"output '{name}': {why}")
        return reasons

    @staticmethod
    def _arity_problems(node: onnx.NodeProto, cls: type[onnx_dialect.OnnxOp]) -> list[str]:
        reasons = []
        for what, given, specs in (("inputs", node.input, cls.INPUT_SPECS),
                                   ("outputs", node.output, cls.OUTPUT_SPECS)):
            variadic = bool(specs) and specs[-1][2] == _Opt.Variadic
            if len(given) > len(specs) and not variadic:
                reasons.append(f"{len(given)} {what} given, at most {len(specs)} allowed")
            for i, (name, _, option) in enumerate(specs):
                if option == _Opt.Single and (i >= len(given) or not given[i]):
                    reasons.append(f"required {what[:-1]} '{name}' is missing")
        return reasons

    def _check(self) -> None:
        graph = self.model.graph
        self.problems += _graph_problems(graph)
        defined = {i.name for i in graph.input} | set(self.initializers)
        writer = {i.name: "a graph input" for i in graph.input}
        writer.update({t.name: "an initializer" for t in graph.initializer})
        for vi in graph.input:
            if vi.name not in self.initializers and (why := _type_problem(vi.type)):
                self.problems.append(NodeProblem(vi.name, "graph input", why))
        for node in graph.node:
            reasons = self._node_problems(node, defined)
            for name in (o for o in node.output if o):
                if name in writer:
                    reasons.append(f"output '{name}' is already {writer[name]}")
                writer[name] = f"written by node '{node.name or node.op_type}'"
            for reason in reasons:
                self.problems.append(NodeProblem(node.name, node.op_type, reason))
            defined.update(o for o in node.output if o)
        for vi in graph.output:
            if vi.name not in defined:
                self.problems.append(NodeProblem(vi.name, "graph output",
                                                 "is not produced by any node or input"))
        if self.problems:
            raise ModelImportError(self.problems, self.source)

    # -- building ------------------------------------------------------------------------------
    def _value_type(self, name: str, node: onnx.NodeProto) -> Attribute:
        tp = self.types.get(name) or self._type_from_schema(name, node)
        if tp is None:  # ONNX could not type it: `tensor<*xnone>`, for nn inference to decide
            return UnrankedTensorType(NoneType())
        return _xdsl_type(tp)

    def _type_from_schema(self, name: str, node: onnx.NodeProto) -> TypeProto | None:
        """An unranked type for an output ONNX's inference left untyped (e.g. Dropout's mask)."""
        schema = onnx.defs.get_schema(node.op_type, self.opset, "")
        index = min(list(node.output).index(name), len(schema.outputs) - 1)
        type_str = schema.outputs[index].type_str
        elem = None
        for i, formal in enumerate(schema.inputs):
            if formal.type_str == type_str and i < len(node.input) and node.input[i] in self.types:
                elem = self.types[node.input[i]].tensor_type.elem_type
                break
        if elem is None:
            allowed = next((c.allowed_type_strs for c in schema.type_constraints
                            if c.type_param_str == type_str), [type_str])
            if len(allowed) != 1 or not allowed[0].startswith("tensor("):
                return None
            names = {onnx_dtype_name(v): v for v in onnx.TensorProto.DataType.values()}
            elem = names.get(allowed[0][len("tensor("):-1])
            if elem is None:
                return None
        tp = TypeProto()
        tp.tensor_type.elem_type = elem
        return tp

    def _weight(self, name: str, block: Block) -> SSAValue:
        array = numpy_helper.to_array(self.initializers[name])
        return self._add_weight(name, array, block)

    def _add_weight(self, name: str, array: np.ndarray, block: Block) -> SSAValue:
        key = self.store.add(name, array)
        op = onnx_dialect.WeightOp.create(
            properties={"ref": StringAttr(key)},
            result_types=[tensor_type(array.shape, element_type_from_numpy(array.dtype))],
        )
        block.add_op(op)
        self.values[name] = op.result
        return op.result

    def _operand(self, name: str, block: Block) -> SSAValue:
        if name not in self.values and name in self.initializers:
            return self._weight(name, block)
        return self.values[name]

    def _node(self, node: onnx.NodeProto, block: Block) -> None:
        if node.domain == INTERNAL_DOMAIN:  # an Assert (checked by _node_problems)
            from ember.dialects.nn.assertion import AssertOp

            message = node.attribute[0].s.decode("utf-8", errors="replace")
            block.add_op(AssertOp.create(operands=[self._operand(node.input[0], block)],
                                         properties={"message": StringAttr(message)}))
            return
        match = self.plugins.get(tuple(node.output))
        if match is not None:  # a plugin imports as `nn.plugin`: its semantics are its own
            op = plugins_onnx.plugin_op(node, match, [self._operand(n, block) for n in node.input])
            block.add_op(op)
            self.values.update(zip(node.output, op.results, strict=True))
            return
        cls = onnx_dialect.op_class(node.op_type, self.opset)
        assert cls is not None
        if node.op_type == "Constant" and self._constant_as_weight(node, block):
            return
        operands: list[SSAValue] = []
        sizes = []
        for i, (_, _, option) in enumerate(cls.INPUT_SPECS):
            if option == _Opt.Variadic:
                names = [n for n in node.input[i:] if n]
                operands += [self._operand(n, block) for n in names]
                sizes.append(len(names))
            elif i < len(node.input) and node.input[i]:
                operands.append(self._operand(node.input[i], block))
                sizes.append(1)
            else:
                sizes.append(0)
        result_types, result_names, result_sizes = [], [], []
        for i, (_, _, option) in enumerate(cls.OUTPUT_SPECS):
            names = [n for n in node.output[i:]] if option == _Opt.Variadic else (
                [node.output[i]] if i < len(node.output) and node.output[i] else [])
            names = [n for n in names if n]
            result_types += [self._value_type(n, node) for n in names]
            result_names += names
            result_sizes.append(len(names))
        properties = {attr.name: _property(attr) for attr in node.attribute}
        if cls.OPERAND_SEGMENTS:
            properties["operandSegmentSizes"] = DenseArrayBase.from_list(i32, sizes)
        if cls.RESULT_SEGMENTS:
            properties["resultSegmentSizes"] = DenseArrayBase.from_list(i32, result_sizes)
        attributes = {"ember.node": StringAttr(node.name)} if node.name else {}
        op = cls.create(operands=operands, result_types=result_types, properties=properties,
                        attributes=attributes)
        block.add_op(op)
        for name, result in zip(result_names, op.results, strict=True):
            self.values[name] = result

    def _constant_as_weight(self, node: onnx.NodeProto, block: Block) -> bool:
        for attr in node.attribute:
            if attr.name == "value" and attr.type == AttributeProto.TENSOR:
                array = numpy_helper.to_array(attr.t)
                if array.size > INLINE_CONSTANT_LIMIT:
                    self._add_weight(node.output[0], array, block)
                    return True
        return False

    def run(self) -> ModuleOp:
        graph = self.model.graph
        if (why := _model_problem(self.model, self.opset)):
            raise ModelImportError(why, self.source)
        self._collect_types()
        self._check()
        inputs = [vi for vi in graph.input if vi.name not in self.initializers]
        arg_types = [_xdsl_type(vi.type) for vi in inputs]
        block = Block(arg_types=arg_types)
        for vi, arg in zip(inputs, block.args, strict=True):
            self.values[vi.name] = arg
        for node in graph.node:
            self._node(node, block)
        results = [self._operand(vi.name, block) for vi in graph.output]
        block.add_op(func.ReturnOp(*results))
        fn = func.FuncOp(
            "main",
            (arg_types, [r.type for r in results]),
            Region(block),
            arg_attrs=ArrayAttr([_name_attr(vi.name) for vi in inputs]),
            res_attrs=ArrayAttr([_name_attr(vi.name) for vi in graph.output]),
        )
        module = ModuleOp([fn], attributes={"onnx.opset": IntegerAttr(self.opset, i64)})
        attach_weights(module, self.store)
        return module


_ATTRIBUTE_TYPES = {AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.STRING,
                    AttributeProto.INTS, AttributeProto.FLOATS, AttributeProto.STRINGS,
                    AttributeProto.TENSOR}


def _name_attr(name: str) -> DictionaryAttr:
    return DictionaryAttr({"ember.name": StringAttr(name)})


def graph_io_names(module: ModuleOp) -> tuple[Sequence[str], Sequence[str]]:
    """The ONNX names of the main function's inputs and outputs."""
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))

    def names(attrs: Any) -> list[str]:
        return [a.data["ember.name"].data for a in attrs.data] if attrs else []

    return names(fn.arg_attrs), names(fn.res_attrs)


# -- malformed models ---------------------------------------------------------------------------
# Checked before anything reads the model, so a malformed one is a ModelImportError naming the
# node or tensor, never an exception from numpy or protobuf halfway through the import.


def _model_problem(model: ModelProto, opset: int) -> str | None:
    """What makes a whole model unreadable: no graph, or versions newer than onnx knows."""
    if not model.HasField("graph"):
        return "the model has no graph (an empty or foreign protobuf message)"
    known = onnx.defs.onnx_opset_version()
    if opset > known:
        return (f"the model's opset {opset} is newer than the installed onnx {onnx.__version__} "
                f"knows (up to opset {known}): upgrade onnx, or export the model at opset "
                f"{known} or lower")
    if model.ir_version > onnx.IR_VERSION:
        return (f"the model's IR version {model.ir_version} is newer than the installed onnx "
                f"{onnx.__version__} reads (up to {onnx.IR_VERSION})")
    return None


def _graph_problems(graph: onnx.GraphProto) -> list[NodeProblem]:
    """Names given twice (graph inputs, initializers, outputs) and a graph without outputs."""
    problems = []
    names = [graph.name, *(vi.name for vi in (*graph.input, *graph.output)),
             *(t.name for t in graph.initializer)]
    if (why := _names_problem(names)):
        return [NodeProblem("", "graph", why)]
    for what, names in (("graph input", [vi.name for vi in graph.input]),
                        ("initializer", [t.name for t in graph.initializer]),
                        ("graph output", [vi.name for vi in graph.output])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                problems.append(NodeProblem(name, what, f"the {what} '{name}' is declared twice"))
            seen.add(name)
    if not graph.output:
        problems.append(NodeProblem(graph.name, "graph", "the graph has no outputs"))
    return problems


def _names_problem(names: list[str]) -> str | None:
    """A name that is not valid UTF-8 (protobuf hands it over with surrogates in it)."""
    for name in names:
        try:
            if isinstance(name, str):
                name.encode("utf-8")
                continue
        except UnicodeEncodeError:
            pass
        return f"the name {name!r} is not valid UTF-8"
    return None


def _attribute_type_name(kind: int) -> str:
    try:
        return AttributeProto.AttributeType.Name(kind)
    except ValueError:
        return f"unknown type {kind}"


def _attribute_problem(attr: AttributeProto, declared: Any, op_type: str) -> str | None:
    """An attribute of another type than its schema declares, or whose tensor is malformed."""
    declared = int(declared)
    if declared != AttributeProto.UNDEFINED and attr.type != declared:
        return (f"attribute '{attr.name}' is {_attribute_type_name(attr.type)}; {op_type} takes "
                f"{_attribute_type_name(declared)}")
    if attr.type == AttributeProto.TENSOR and (why := _tensor_problem(attr.t)):
        return f"attribute '{attr.name}': the tensor {why}"
    return None


_T = onnx.TensorProto
_SUB_BYTE_BITS = {getattr(_T, n): b for n, b in (("UINT4", 4), ("INT4", 4), ("FLOAT4E2M1", 4),
                                                 ("UINT2", 2), ("INT2", 2)) if hasattr(_T, n)}


def inference_is_safe(graph: onnx.GraphProto) -> bool:
    """Whether onnx's shape inference may be run on the graph: it aborts the process (a C++
    assertion, e.g. in Slice's) on some tensors declared with a negative dim."""
    return not _negative_dims(graph) and not any(d < 0 for t in graph.initializer
                                                 for d in t.dims)


def _negative_dims(graph: onnx.GraphProto) -> list[tuple[str, list[int]]]:
    """The graph's inputs, outputs and value_info whose declared shape has a negative dim (the
    initializers' are `_tensor_problem`'s), each with its dims."""
    out = []
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.WhichOneof("value") != "tensor_type":
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if any(d < 0 for d in dims):
            out.append((vi.name, dims))
    return out


def _tensor_problem(t: onnx.TensorProto) -> str | None:
    """A tensor whose data does not fill its declared shape (or overflows it), with a negative
    dim or an unknown element type; None when numpy_helper can read it as declared."""
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        return f"has a negative dim in its shape {dims}"
    if t.data_type not in _T.DataType.values() or t.data_type == _T.UNDEFINED:
        return f"has an unknown element type {t.data_type}"
    if t.data_location == _T.EXTERNAL and not t.raw_data:
        return None  # read from its file by numpy_helper
    count = int(np.prod(dims, dtype=object)) if dims else 1
    kind = onnx_dtype_name(t.data_type)
    if t.data_type == _T.STRING:
        have, want, unit = len(t.string_data), count, "strings"
    elif t.HasField("raw_data"):
        bits = _SUB_BYTE_BITS.get(t.data_type) or 8 * np.dtype(
            onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        have, want, unit = len(t.raw_data), -(-count * bits // 8), "bytes of raw_data"
    elif t.data_type in _SUB_BYTE_BITS:
        return None  # packed into int32_data; numpy_helper checks it
    else:
        field = onnx.helper.tensor_dtype_to_field(t.data_type)
        per = 2 if t.data_type in (_T.COMPLEX64, _T.COMPLEX128) else 1
        have, want, unit = len(getattr(t, field)), count * per, f"{field} values"
    if have != want:
        return f"holds {have} {unit}; its shape {dims} of {kind} needs {want}"
    return None
