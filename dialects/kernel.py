"""The `kernel` dialect: what runs. Each op is one kernel template instance.

- `kernel.launch "conv" (%x, %w, %b) {params = {...}, origin = [...]}`: a template (conv, matmul,
  pool, reduce, softmax, transpose, ...) with its static parameters: the nn op's properties plus
  the shapes and element types of its operands and results (`in_shapes`, `out_shapes`,
  `out_dtypes`). CPU and CUDA implementations of a template read the same parameters. An
  optional `epilogue` region (conv, matmul) maps each output element before it is stored:
  block argument 0 is the kernel's own value, the rest are the trailing extra operands' elements
  (broadcast to the output shape); it ends with `kernel.yield`. The launch's result has the
  yielded type, which an epilogue ending in a cast makes differ from `out_dtypes` (the type the
  template computes its own value in). One exception: a conv with params `shortcut = {strides,
  sums: k}` (fuse-shortcut-convs' INT8 form) has extra operand k a second conv's input and
  block argument k + 1 that conv's int32 sum for the output element, not an element of it.
- `kernel.elementwise (%a, %b) {...} ({ ^bb0(%s0: f32, %s1: f32): ... kernel.yield %r })`: one
  output element computed from the inputs' elements (broadcast to the output shape) by a scalar
  region of `kernel.scalar` ops. Fusion moves scalar ops into these regions. Its optional
  `views` (fuse-strided-reads) read some inputs through strides instead: entry
  `{input = k, offset = o, strides = [...]}` reads input k's buffer at element
  `o + sum(c_d * strides[d])` for output coordinates `c` (a transpose / slice chain it absorbed).
- `kernel.view %x`: the same bytes seen with another shape (a reshape): no kernel runs.
- `kernel.cuda "conv_<hash>"(%y) grid [...] block [...] shared N : type { | C text }`: the CUDA C
  that the emit-cuda pass emitted for the kernel op defining %y, with its launch geometry; the
  source prints as lines after `|`, so it reads as C.
`origin` names the ONNX nodes a kernel came from; `tactic` is the tactic select-tactics chose
(at the profile's opt shapes where sizes are symbolic), `small_tactics` those the autotuner timed
for the kernels of small shapes (symbol set "N,S" -> tactic); `arena` (set by plan-memory) is
each result's byte offset in the activation arena. After emit-cuda a kernel op is followed by its
`kernel.cuda` op(s) (a symbolic conv/matmul: then one per small-shape variant, each with `when`),
or carries `cuda_fallback = "<reason>"`: it runs on the host.
"""

from __future__ import annotations

import math
from collections.abc import Set as AbstractSet

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IntAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    opt_region_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import (
    AlwaysSpeculatable,
    EffectInstance,
    HasParent,
    IsTerminator,
    MemoryEffect,
    MemoryEffectKind,
    Pure,
)
from xdsl.utils.exceptions import VerifyException

from ember.dialects.kernel_templates import check_launch
from ember.dialects.nn.functions import BINARY, UNARY
from ember.dialects.tensor_types import shape_of
from ember.runtime.cpu_kernels.elementwise import view_reach

# kernel.scalar functions beyond the nn tables: select(c, a, b), cast (to the result type) and
# lookup (an 8-bit integer's entry of the op's `table`: tabulate-int8-chains)
SCALAR_EXTRA = {"select": 3, "cast": 1, "saturate_cast": 1, "lookup": 1}


# templates whose kernel does more than compute its results (an assertion that fails the run):
# dead-code elimination keeps them though nothing reads a result
SIDE_EFFECTS = frozenset({"assert"})


class LaunchEffects(MemoryEffect):
    """A kernel.launch has no effect beyond its results, but for the SIDE_EFFECTS templates."""

    @classmethod
    def get_effects(cls, op: Operation) -> AbstractSet[EffectInstance]:
        template = op.properties.get("template")
        if isinstance(template, StringAttr) and template.data in SIDE_EFFECTS:
            return frozenset({EffectInstance(MemoryEffectKind.WRITE)})
        return frozenset()


@irdl_op_definition
class LaunchOp(IRDLOperation):
    name = "kernel.launch"
    template = prop_def(StringAttr)
    params = prop_def(DictionaryAttr)
    origin = opt_prop_def(ArrayAttr)
    tactic = opt_prop_def(DictionaryAttr)
    small_tactics = opt_prop_def(DictionaryAttr)
    arena = opt_prop_def(DenseArrayBase)
    inputs = var_operand_def()
    outputs = var_result_def()
    epilogue = opt_region_def("single_block")
    traits = traits_def(LaunchEffects(), AlwaysSpeculatable())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$template `(` $inputs `)` attr-dict `:` functional-type($inputs, results)"
                       " (`epilogue` $epilogue^)?")

    def verify_(self) -> None:
        _verify_arena(self, self.arena)
        extra = None
        if self.epilogue is not None:
            block = self.epilogue.block
            if len(self.outputs) != 1 or not 1 <= len(block.args) <= len(self.inputs) + 1:
                raise VerifyException("kernel.launch: an epilogue needs one result and one "
                                      "block argument for it plus one per extra (trailing) "
                                      "input")
            if not isinstance(block.last_op, YieldOp):
                raise VerifyException("kernel.launch: the epilogue must end with kernel.yield")
            extra = len(block.args) - 1
        # the params its template's descriptor declares (dialects/kernel_templates.py)
        check_launch(self.template.data, self.params, self.inputs.types, self.outputs.types,
                     extra)

    @property
    def epilogue_inputs(self) -> tuple[SSAValue, ...]:
        """The trailing operands the epilogue reads (none without an epilogue)."""
        extra = len(self.epilogue.block.args) - 1 if self.epilogue is not None else 0
        return tuple(self.inputs[len(self.inputs) - extra:]) if extra else ()


@irdl_op_definition
class ElementwiseOp(IRDLOperation):
    name = "kernel.elementwise"
    origin = opt_prop_def(ArrayAttr)
    tactic = opt_prop_def(DictionaryAttr)
    arena = opt_prop_def(DenseArrayBase)
    views = opt_prop_def(ArrayAttr)
    inputs = var_operand_def()
    output = result_def()
    body = region_def("single_block")
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "`(` $inputs `)` attr-dict-with-keyword `:` functional-type($inputs, results) $body"
    )

    def verify_(self) -> None:
        _verify_arena(self, self.arena)
        block = self.body.block
        if len(block.args) != len(self.inputs):
            raise VerifyException("kernel.elementwise: one block argument per input")
        if not isinstance(block.last_op, YieldOp):
            raise VerifyException("kernel.elementwise: the region must end with kernel.yield")
        if self.views is not None:
            _verify_views(self)


def _verify_views(op: ElementwiseOp) -> None:
    """Each `views` entry: {input: k (one entry per input at most), offset >= 0, strides: one
    int per output dim}, over a static output shape."""
    out = shape_of(op.output)
    seen: set[int] = set()
    for entry in op.views.data:  # type: ignore[union-attr]
        data = entry.data if isinstance(entry, DictionaryAttr) else None
        ok = data is not None and set(data) == {"input", "offset", "strides"} and \
            isinstance(data["input"], IntegerAttr) and isinstance(data["offset"], IntegerAttr) \
            and isinstance(data["strides"], DenseArrayBase)
        if not ok:
            raise VerifyException(f"kernel.elementwise: views entry {entry} is not "
                                  "{input = k, offset = o, strides = array<i64: ...>}")
        k, offset = data["input"].value.data, data["offset"].value.data
        strides = list(data["strides"].get_values())
        if not 0 <= k < len(op.inputs) or k in seen:
            raise VerifyException(f"kernel.elementwise: views entry {entry} names no input of "
                                  f"the {len(op.inputs)}, or one named before")
        source = shape_of(op.inputs[k])
        if out is None or source is None or any(not isinstance(d, int) for d in (*out, *source)):
            raise VerifyException(f"kernel.elementwise: views entry {entry}: views need static "
                                  f"shapes ({op.inputs[k].type} -> {op.output.type})")
        if len(strides) != len(out):
            raise VerifyException(f"kernel.elementwise: views entry {entry}: one stride per dim "
                                  f"of the result {op.output.type}")
        if 0 not in out:
            low, high = view_reach(offset, strides, out)
            if low < 0 or high >= math.prod(source):
                raise VerifyException(f"kernel.elementwise: views entry {entry} reads elements "
                                      f"{low}..{high}, outside its input {op.inputs[k].type}")
        seen.add(k)


def _verify_arena(op: IRDLOperation, arena: DenseArrayBase | None) -> None:
    """`arena`: one byte offset (i64, >= 0) per result."""
    if arena is None:
        return
    offsets = arena.get_values()
    if arena.elt_type != i64 or len(offsets) != len(op.results) or min(offsets, default=0) < 0:
        raise VerifyException(f"{op.name}: arena holds one offset (i64, >= 0) per result, "
                              f"got {arena} for {len(op.results)} result(s)")


@irdl_op_definition
class ScalarOp(IRDLOperation):
    """`fn` of scalars: a function of nn's UNARY/BINARY tables, `select`, `cast` or `lookup`:
    entry q - min of `table` for an 8-bit integer q (the table's 2^bits entries are the result
    type's values, floats as their bit patterns)."""

    name = "kernel.scalar"
    fn = prop_def(StringAttr)
    alpha = opt_prop_def(Attribute)
    beta = opt_prop_def(Attribute)
    table = opt_prop_def(DenseArrayBase)
    args = var_operand_def()
    result = result_def()
    traits = traits_def(Pure(), HasParent(ElementwiseOp, LaunchOp))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$fn $args attr-dict `:` functional-type($args, $result)"

    def verify_(self) -> None:
        fn = self.fn.data
        arity = 1 if fn in UNARY else 2 if fn in BINARY else SCALAR_EXTRA.get(fn)
        if arity is None:
            raise VerifyException(f"kernel.scalar: unknown function '{fn}'")
        if len(self.args) != arity:
            raise VerifyException(f"kernel.scalar {fn}: takes {arity} argument(s)")
        if (fn == "lookup") != (self.table is not None):
            raise VerifyException(f"kernel.scalar {fn}: a table belongs to lookup, and only it")
        if fn == "lookup":
            source = self.args[0].type
            if not isinstance(source, IntegerType) or source.width.data != 8 \
                    or len(self.table.get_values()) != 256:
                raise VerifyException("kernel.scalar lookup: reads a 256-entry table at an "
                                      f"8-bit integer, not {source}")


@irdl_op_definition
class YieldOp(IRDLOperation):
    name = "kernel.yield"
    value = operand_def()
    traits = traits_def(IsTerminator(), HasParent(ElementwiseOp, LaunchOp))
    assembly_format = "$value attr-dict `:` type($value)"


@irdl_op_definition
class ViewOp(IRDLOperation):
    """The input's bytes with the result's shape (row-major, so only the shape changes)."""

    name = "kernel.view"
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"


@irdl_op_definition
class CudaOp(IRDLOperation):
    """The CUDA kernel of the kernel op whose results are its operands: the kernel's name
    (template + hash of the source), launch grid (ints; C expressions over the `sz_<symbol>`
    arguments where sizes are symbolic), block, dynamic shared bytes, `scratch` (split-K
    counter and workspace bytes), `sizes` (symbols passed as trailing `int` arguments),
    `tmaps` (tensor maps passed after the pointers) and the C text; a small-shape variant's
    `when` (symbol -> the largest value it runs for). It reads the kernel's results only to
    name it: nothing runs here."""

    name = "kernel.cuda"
    kernel = prop_def(StringAttr)
    grid = prop_def(ArrayAttr)
    block = prop_def(ArrayAttr[IntAttr])
    shared = prop_def(IntAttr)
    scratch = opt_prop_def(ArrayAttr[IntAttr])
    sizes = opt_prop_def(ArrayAttr[StringAttr])
    # tensor maps the kernel takes after its pointers (ember.runtime.tensor_maps.TensorMap's
    # fields, one dictionary each)
    tmaps = opt_prop_def(ArrayAttr[DictionaryAttr])
    when = opt_prop_def(DictionaryAttr)
    source = prop_def(StringAttr)
    kernels = var_operand_def()

    def verify_(self) -> None:
        if len(self.grid) != 3 or len(self.block) != 3 or not all(
                isinstance(g, IntAttr | StringAttr) for g in self.grid):
            raise VerifyException("kernel.cuda: grid and block have 3 entries (grid: ints or "
                                  "C expressions)")
        if self.scratch is not None and len(self.scratch) != 2:
            raise VerifyException("kernel.cuda: scratch is [counter bytes, workspace bytes]")
        if self.tmaps is not None:
            from ember.dialects.attributes import attribute_value
            from ember.errors import PlanError
            from ember.runtime.tensor_maps import TensorMap

            for i, t in enumerate(self.tmaps):
                try:
                    TensorMap.from_json(attribute_value(t), f"tensor map #{i}")
                except PlanError as e:
                    raise VerifyException(f"kernel.cuda: {e}") from None
        if self.when is not None and not all(
                isinstance(v, IntegerAttr) and v.value.data >= 1
                for v in self.when.data.values()):
            raise VerifyException("kernel.cuda: when maps symbols to integers >= 1")
        if not self.source.data.endswith("\n"):
            raise VerifyException("kernel.cuda: the source ends with a newline")
        if f" {self.kernel.data}(" not in self.source.data:
            raise VerifyException(f"kernel.cuda: the source defines no kernel "
                                  f"'{self.kernel.data}'")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.kernel.data)
        printer.print_string("(")
        printer.print_list(self.kernels, printer.print_operand)
        printer.print_string(") grid ")
        with printer.in_square_brackets():
            printer.print_list(self.grid, lambda g: printer.print_string_literal(g.data)
                               if isinstance(g, StringAttr) else printer.print_string(
                                   str(g.data)))
        for key, values in (("block", self.block), ("shared", [self.shared]),
                            ("scratch", self.scratch)):
            if values is None:
                continue
            printer.print_string(f" {key} ")
            text = ", ".join(str(v.data) for v in values)
            printer.print_string(f"[{text}]" if key != "shared" else text)
        if self.sizes is not None:
            printer.print_string(" sizes [")
            printer.print_list(self.sizes, lambda z: printer.print_string_literal(z.data))
            printer.print_string("]")
        if self.tmaps is not None:
            printer.print_string(" tmaps ")
            printer.print_attribute(self.tmaps)
        if self.when is not None:
            printer.print_string(" when ")
            printer.print_attribute(self.when)
        printer.print_string(" : ")
        printer.print_list((v.type for v in self.kernels), printer.print_attribute)
        printer.print_string(" {")
        for line in self.source.data[:-1].split("\n"):
            printer._print_new_line()
            printer.print_string(f"| {line}" if line else "|")
        printer._print_new_line()
        printer.print_string("}")

    @classmethod
    def parse(cls, parser: Parser) -> CudaOp:
        kernel = parser.parse_str_literal("kernel name")
        at = parser.pos
        operands = parser.parse_comma_separated_list(
            parser.Delimiter.PAREN, parser.parse_unresolved_operand)
        parser.parse_keyword("grid")
        grid = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: StringAttr(s) if (
                s := parser.parse_optional_str_literal()) is not None
            else IntAttr(parser.parse_integer(allow_boolean=False)))
        parser.parse_keyword("block")
        block = _parse_ints(parser)
        parser.parse_keyword("shared")
        props: dict[str, Attribute] = {
            "kernel": StringAttr(kernel), "grid": ArrayAttr(grid), "block": ArrayAttr(block),
            "shared": IntAttr(parser.parse_integer(allow_boolean=False))}
        if parser.parse_optional_keyword("scratch"):
            props["scratch"] = ArrayAttr(_parse_ints(parser))
        if parser.parse_optional_keyword("sizes"):
            props["sizes"] = ArrayAttr(parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, lambda: StringAttr(parser.parse_str_literal())))
        if parser.parse_optional_keyword("tmaps"):
            tmaps = parser.parse_attribute()
            if not isinstance(tmaps, ArrayAttr) or not all(
                    isinstance(t, DictionaryAttr) for t in tmaps):
                parser.raise_error("expected a list of dictionaries after 'tmaps'")
            props["tmaps"] = tmaps
        if parser.parse_optional_keyword("when"):
            when = parser.parse_attribute()
            if not isinstance(when, DictionaryAttr):
                parser.raise_error("expected a dictionary after 'when'")
            props["when"] = when
        parser.parse_punctuation(":")
        types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
        props["source"] = StringAttr(_parse_text_block(parser))
        return cls.create(operands=parser.resolve_operands(operands, types, at),
                          properties=props)


def _parse_ints(parser: Parser) -> list[IntAttr]:
    return parser.parse_comma_separated_list(
        parser.Delimiter.SQUARE, lambda: IntAttr(parser.parse_integer(allow_boolean=False)))


def _parse_text_block(parser: Parser) -> str:
    """`{` then lines that each start with `|` (the text after `| `), then `}`: raw text that
    the MLIR lexer could not tokenize, read straight from the input."""
    if parser.parse_optional_punctuation("{") is None:
        parser.raise_error("expected '{' and the kernel's source as lines starting with '|'")
    text = parser.lexer.input.content
    pos = parser._current_token.span.start  # the lexer has read one token past the brace
    lines = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            break
        if pos >= len(text) or text[pos] != "|":
            parser.raise_error("expected a source line starting with '|' or the closing '}'",
                               pos)
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos + 1:end]
        lines.append(line[1:] if line.startswith(" ") else line)
        pos = end
    parser._resume_from(pos + 1)
    return "\n".join(lines) + "\n"


KERNEL = Dialect("kernel", [LaunchOp, ElementwiseOp, ScalarOp, YieldOp, ViewOp, CudaOp], [])
