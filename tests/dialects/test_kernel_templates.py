"""Template descriptors (dialects/kernel_templates.py) and kernel.launch's param verifier: one
descriptor per codegen / CPU-executor template whose emitter and numpy reference exist; the nn
ops' properties declared with their kinds; every stage of real builds verifies; bad params
(unknown template or key, missing key, wrong kind or value, miscounted shapes, an epilogue where
none goes) raise a VerifyException naming the template, the key and what was expected."""

from __future__ import annotations

import importlib
from pathlib import Path

import onnx
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.irdl import AnyAttr, BaseAttr, OptPropertyDef
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from ember.codegen import templates as codegen_templates
from ember.compiler.builder import BuilderConfig, BuilderFlag, OptimizationProfile, build_model
from ember.compiler.models import LIGHT_MODELS, light_model_path
from ember.compiler.pipeline import run_passes
from ember.dialects import ember_context
from ember.dialects.attributes import attribute_value, to_attribute
from ember.dialects.kernel import LaunchOp
from ember.dialects.kernel_templates import (
    ATTRS,
    BOOL,
    DTYPE,
    FLOAT,
    FLOATS,
    INT,
    INTS,
    LAUNCH_TEMPLATES,
    NUMBER,
    STR,
    STRS,
    TEMPLATES,
    Layout,
    descriptor,
)
from ember.dialects.nn import NN
from ember.dialects.weights import parse_module
from ember.errors import PassError
from ember.runtime.cpu_kernels import KERNELS

MODELS = Path(__file__).parents[1] / "models"


# -- the descriptors ----------------------------------------------------------------------------

def test_one_descriptor_per_cpu_and_cuda_template():
    assert set(TEMPLATES) == set(KERNELS)  # the CPU executor's templates, nothing more
    with_cuda = {t for t, d in TEMPLATES.items() if d.emitter is not None}
    assert with_cuda == set(codegen_templates.TEMPLATES)
    for name, d in TEMPLATES.items():
        assert d.name == name and d.reference is KERNELS[name]
        if d.emitter is not None:
            module = importlib.import_module(d.emitter)
            assert callable(module.emit)
            assert codegen_templates.template_module(name) is module
        for key in ("in_shapes", "in_dtypes", "out_shapes", "out_dtypes"):
            assert d.params[key].required, (name, key)


def test_elementwise_templates_are_not_launches():
    elementwise = {t for t, d in TEMPLATES.items() if d.op == "kernel.elementwise"}
    assert elementwise == {"elementwise", "unary", "binary", "select", "cast"}
    assert not elementwise & set(LAUNCH_TEMPLATES)


def test_elementwise_step_params_match_the_descriptor():
    """A kernel.elementwise op's plan params (its region as data, its `views` as `in_views`)
    are what the elementwise descriptor declares, nested region included; a region op without
    its dtype is not."""
    from ember.codegen.kernel_step import kernel_step

    module = parse_module(ember_context(), """builtin.module {
  func.func @f(%x: tensor<2x8xf32>, %b: tensor<8xf32>) -> tensor<2x8xf16> {
    %y = kernel.elementwise(%x, %b) attributes {views = [
        {input = 0 : i64, offset = 0 : i64, strides = array<i64: 1, 2>}]}
        : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf16> {
    ^bb0(%0: f32, %1: f32):
      %2 = kernel.scalar "add" %0, %1 : (f32, f32) -> f32
      %3 = kernel.scalar "leaky_relu" %2 {alpha = 1.000000e-01 : f64} : (f32) -> f32
      %4 = kernel.scalar "cast" %3 : (f32) -> f16
      kernel.yield %4 : f16
    }
    func.return %y : tensor<2x8xf16>
  }
}""")
    op = next(o for o in module.walk() if o.name == "kernel.elementwise")
    template, params = kernel_step(op, {})
    declared = descriptor(template).params
    assert set(params) == set(declared)
    for key, value in params.items():
        assert declared[key].problem(to_attribute(value)) is None, key
    del params["region"]["ops"][1]["dtype"]
    assert "a dictionary {ops, result}" in declared["region"].problem(
        to_attribute(params["region"]))


def test_layout_behaviour():
    by_layout = {layout: {t for t in LAUNCH_TEMPLATES if TEMPLATES[t].layout is layout}
                 for layout in Layout}
    assert by_layout[Layout.NHWC_FORM] == {"conv", "pool"}
    assert by_layout[Layout.PHYSICAL] == {"concat", "softmax", "transpose", "slice", "pad",
                                          "reduce"}
    assert by_layout[Layout.REFORMAT] == {"reformat"}
    for t in LAUNCH_TEMPLATES:  # a template runs in NHWC only with its params rewritten
        d = TEMPLATES[t]
        assert (d.nhwc is not None) == (d.layout in (Layout.NHWC_FORM, Layout.PHYSICAL)), t
    assert {t for t, d in TEMPLATES.items() if d.packed} == {"conv", "pool"}
    assert {t for t, d in TEMPLATES.items() if d.packable} == {"conv", "pool", "concat",
                                                                "reduce"}
    assert {t for t, d in TEMPLATES.items() if d.epilogue} == {"conv", "matmul", "layer_norm",
                                                                "softmax"}


def test_nhwc_rewrites():
    nhwc, nchw = (0, 2, 3, 1), (0, 1, 2, 3)
    p = {"axis": -3}
    descriptor("concat").nhwc(p, nhwc, nhwc)
    assert p == {"axis": 3}  # C is physical dim 3
    p = {"axes": [2, 3]}
    descriptor("reduce").nhwc(p, nhwc, nhwc)
    assert p == {"axes": [1, 2]}
    p = {"pads": [0, 1, 2, 3, 4, 5, 6, 7]}
    descriptor("pad").nhwc(p, nhwc, nhwc)
    assert p == {"pads": [0, 2, 3, 1, 4, 6, 7, 5]}
    # an NCHW->NHWC transpose whose input is already NHWC and whose result is NCHW: identity
    p = {"perm": [0, 2, 3, 1]}
    descriptor("transpose").nhwc(p, nhwc, nchw)
    assert p == {"perm": [0, 1, 2, 3]}
    p = {}
    descriptor("conv").packed(p, 6, True)
    assert p == {"layout": "NC4HW4", "channels": 6, "weight_layout": "C4RS4"}


def test_when_a_template_has_a_format():
    reduce = descriptor("reduce")
    # dropping H and W leaves [N, C] in either format; dropping C leaves N, H, W in NHWC order;
    # dropping W leaves [N, C, H], which NHWC would order [N, H, C]
    assert reduce.nhwc_when({"axes": [2, 3], "keepdims": False})
    assert reduce.nhwc_when({"axes": [1], "keepdims": False})
    assert not reduce.nhwc_when({"axes": [-1], "keepdims": False})
    assert reduce.nhwc_when({"axes": [-1], "keepdims": True})
    assert reduce.packable({"axes": [2, 3], "keepdims": True}, [(1, 8, 4, 4)])
    assert not reduce.packable({"axes": [1], "keepdims": True}, [(1, 8, 4, 4)])  # the lanes
    concat = descriptor("concat").packable
    assert concat({"axis": 1}, [(1, 8, 4, 4), (1, 4, 4, 4)])
    assert not concat({"axis": 1}, [(1, 6, 4, 4), (1, 4, 4, 4)])  # pad lanes in between
    assert concat({"axis": 3}, [(1, 6, 4, 4), (1, 6, 4, 2)])


_KINDS = {"IntegerAttr": (INT, BOOL), "FloatAttr": (FLOAT,), "StringAttr": (STR,),
          "DenseArrayBase": (INTS, FLOATS), "TypeAttribute": (DTYPE,), "UnitAttr": (BOOL,),
          "DictionaryAttr": (ATTRS,), "ArrayAttr": (STRS,)}


@pytest.mark.parametrize("op", [op for op in NN.operations
                                if op.name.removeprefix("nn.") in TEMPLATES], ids=str)
def test_nn_properties_are_declared(op):
    """Each property of the nn op a template comes from is a param of the kind its attribute
    gives, required exactly where the property is."""
    d = descriptor(op.name.removeprefix("nn."))
    for name, prop in op.get_irdl_definition().properties.items():
        if name == "operandSegmentSizes":
            continue
        assert name in d.params, (op.name, name)
        param = d.params[name]
        assert param.required == (not isinstance(prop, OptPropertyDef)), (op.name, name)
        constr = prop.constr
        if isinstance(constr, AnyAttr):
            assert param.kind is NUMBER
        else:
            assert isinstance(constr, BaseAttr)
            assert param.kind in _KINDS[constr.attr.__name__], (op.name, name, param.kind)
    if getattr(op, "DYNAMIC", ()):
        assert "dynamic" in d.params


# -- real builds verify at every stage ----------------------------------------------------------

def _launches(seen: set[str]):
    def after(index: int, p: ModulePass, module: ModuleOp) -> None:
        for op in module.walk():
            if isinstance(op, LaunchOp):
                op.verify_()  # the pipeline verified it too; this makes sure it is checked
                seen.add(op.template.data)
    return after


def _profile(names: tuple[str, ...], spec) -> OptimizationProfile:
    p = OptimizationProfile()
    for n in names:
        p.set_shape(n, *spec)
    return p


_CONFIGS = {
    "cpu": lambda: BuilderConfig(autotune=False),
    "sm90-fp16": lambda: BuilderConfig(target_arch="sm_90", autotune=False,
                                       flags=BuilderFlag.FP16),
}


@pytest.mark.parametrize("config", list(_CONFIGS))
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_verify(name, config):
    seen: set[str] = set()
    build_model(onnx.load(str(light_model_path(name))), _CONFIGS[config](),
                after_pass=_launches(seen))
    assert "conv" in seen


@pytest.mark.parametrize("config", ["sm90", "unoptimized", "sm90-tf32-packed"])
def test_resnet50_other_pipelines_verify(config):
    make = {"sm90": lambda: BuilderConfig(target_arch="sm_90", autotune=False),
            "unoptimized": lambda: BuilderConfig(optimize=False),
            "sm90-tf32-packed": lambda: BuilderConfig(
                target_arch="sm_90", autotune=False, flags=BuilderFlag.TF32,
                packed_format=True, allowed_io_formats=("NCHW", "NHWC"))}[config]
    seen: set[str] = set()
    build_model(onnx.load(str(light_model_path("resnet50"))), make(), after_pass=_launches(seen))
    assert {"conv", "pool", "matmul"} <= seen


_BERT_INPUTS = ("input_ids", "attention_mask")
_BERT = {
    "bert_tiny": None,
    "bert_tiny_dynamic": ((1, 16), (2, 16), (4, 16)),
    "bert_tiny_dynamic_seq": ((1, 1), (2, 16), (4, 32)),
}


@pytest.mark.parametrize("config", list(_CONFIGS))
@pytest.mark.parametrize("name", list(_BERT))
def test_bert_models_verify(name, config):
    cfg = _CONFIGS[config]()
    if _BERT[name] is not None:
        cfg.profiles = [_profile(_BERT_INPUTS, _BERT[name])]
    seen: set[str] = set()
    build_model(onnx.load(str(MODELS / f"{name}.onnx")), cfg, after_pass=_launches(seen))
    assert {"matmul", "layer_norm"} <= seen


# -- bad params -----------------------------------------------------------------------------------

_IO = ('in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], '
       'out_dtypes = ["float32"]')


def _verify(template: str, params: str, operands: int = 1, epilogue: bool = False) -> None:
    args = ", ".join(["%x"] * operands)
    types = ", ".join(["tensor<2x8xf32>"] * operands)
    region = (" epilogue {\n    ^bb0(%a: f32):\n      kernel.yield %a : f32\n    }"
              if epilogue else "")
    launch = (f'kernel.launch "{template}"({args}) {{params = {{{params}}}}} : ({types}) -> '
              f"tensor<2x8xf32>{region}")
    _module(launch).verify()


def _module(launch: str) -> ModuleOp:
    return parse_module(ember_context(), f"""builtin.module {{
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {{
    %y = {launch}
    func.return %y : tensor<2x8xf32>
  }}
}}""")


def test_good_params_verify():
    _verify("softmax", f"axis = 1 : i64, log = false, {_IO}")
    # symbolic dims are strings; a static shape may also be a plain list
    _verify("softmax", 'axis = 1 : i64, log = true, in_shapes = [["N", 8]], in_dtypes = '
            '["float32"], out_shapes = [[2, "8*N"]], out_dtypes = ["float32"]')


@pytest.mark.parametrize("template, params, message", [
    ("softmx", f"axis = 1 : i64, {_IO}",
     r"kernel.launch: unknown template 'softmx' \(templates: arg_reduce, .*softmax"),
    ("elementwise", _IO, r"kernel.launch 'elementwise': this template is a kernel.elementwise "
     "op, not a launch"),
    ("softmax", f"axis = 1 : i64, log = false, tactic = {{tile = 1 : i64}}, {_IO}",
     r"kernel.launch 'softmax': unknown param 'tactic' \(softmax takes: axis, in_dtypes, "
     r"in_shapes, log, out_dtypes, out_shapes\)"),
    ("softmax", f"axis = 1 : i64, {_IO}",
     r"kernel.launch 'softmax': missing required param 'log' \(a bool\)"),
    ("softmax", f"axis = 1 : i64, log = 0 : i64, {_IO}",
     r"kernel.launch 'softmax': param 'log' must be a bool, got 0 : i64"),
    ("softmax", f"axis = 1.0 : f64, log = false, {_IO}",
     r"kernel.launch 'softmax': param 'axis' must be an int \(i64\), got 1.0"),
    ("pool", "fn = \"mean\", kernel = array<i64: 2>, strides = array<i64: 1>, "
     f"pads = array<i64: 0, 0>, dilations = array<i64: 1>, ceil_mode = false, {_IO}",
     r"kernel.launch 'pool': param 'fn' must be one of max, avg, lp, got \"mean\""),
    ("transpose", f"perm = [0, 1], {_IO}",
     r"kernel.launch 'transpose': param 'perm' must be an int list \(array<i64: ...>\)"),
    ("softmax", 'axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>], in_dtypes = '
     '["float33"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]',
     r"kernel.launch 'softmax': param 'in_dtypes' must be a dtype name list"),
    ("softmax", 'axis = 1 : i64, log = false, in_shapes = [["?", 8]], in_dtypes = '
     '["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]',
     r"kernel.launch 'softmax': param 'in_shapes' must be a shape list"),
    ("softmax", 'axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>, array<i64: 2, 8>]'
     ', in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]',
     r"kernel.launch 'softmax': param 'in_shapes' has 2 entries for 1 operand\(s\)"),
    ("softmax", 'axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>], in_dtypes = '
     '["float16"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]',
     r"kernel.launch 'softmax': param 'in_dtypes' says operand #0 is \"float16\", but its "
     r"type is tensor<2x8xf32>"),
])
def test_bad_params(template, params, message):
    with pytest.raises(VerifyException, match=message):
        _verify(template, params)


def test_epilogue_only_where_the_template_takes_one():
    with pytest.raises(VerifyException, match=r"kernel.launch 'transpose': this template takes "
                       r"no epilogue \(those that do: conv, matmul, softmax, layer_norm\)"):
        _verify("transpose", f"perm = array<i64: 0, 1>, {_IO}", epilogue=True)
    _verify("softmax", f"axis = 1 : i64, log = false, {_IO}", epilogue=True)
    # a matmul's epilogue inputs are not its own: in_shapes counts the two before them
    _verify("matmul", 'in_shapes = [array<i64: 2, 8>, array<i64: 8, 8>], in_dtypes = '
            '["float32", "float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]',
            operands=2, epilogue=True)


class _BadKey(ModulePass):
    """Writes a key no template declares into every launch's params."""

    name = "bad-key"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in module.walk():
            if isinstance(op, LaunchOp):
                op.properties["params"] = to_attribute(
                    {**attribute_value(op.params), "layuot": "NHWC"})


def test_a_pass_writing_a_bad_key_fails_verification():
    module = _module(f'kernel.launch "softmax"(%x) {{params = {{axis = 1 : i64, log = false, '
                     f"{_IO}}}}} : (tensor<2x8xf32>) -> tensor<2x8xf32>")
    with pytest.raises(PassError, match=r"the IR does not verify after bad-key: kernel.launch "
                       r"'softmax': unknown param 'layuot'"):
        run_passes(module, [_BadKey()])
