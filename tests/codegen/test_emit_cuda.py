"""The emit-cuda pass: the kernels it shows are the kernels a CUDA plan runs (same names, same
sources, same launch geometry and size arguments), `kernel.cuda` prints and parses back, and
symbolic sizes are declared kernel arguments."""

from __future__ import annotations

import pytest
from xdsl.context import Context
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError

from ember.codegen.emit_cuda import EmitCuda, emit_step, parse_symbol_ranges
from ember.codegen.templates import KernelSpec, signature, source
from ember.compiler.builder import (
    BuilderConfig,
    OptimizationProfile,
    _apply_profiles,
    pipeline_for,
)
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import run_passes
from ember.compiler.plan_builder import build_plan
from ember.dialects import ember_context
from ember.dialects.kernel import CudaOp
from ember.dialects.symbol_ranges import set_symbol_ranges
from ember.errors import EmberError, PassError
from ember.runtime.symbolic import expr_text
from tests.dynamic_models import attention_block, cnn

CNN_PROFILE = {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}
ATTN_PROFILE = {"x": ((1, 1, 32), (2, 16, 32), (4, 64, 32))}


def _kernel_module(model, profile=None):
    """The module a CUDA build plans from (sm_90 pipeline), and the plan's symbols."""
    profiles = []
    if profile:
        p = OptimizationProfile()
        for name, (lo, opt, hi) in profile.items():
            p.set_shape(name, lo, opt, hi)
        profiles.append(p)
    config = BuilderConfig(target_arch="sm_90", autotune=False, profiles=profiles)
    proto, symbols = _apply_profiles(model, config)
    module = import_onnx(proto)
    set_symbol_ranges(module, symbols)  # as build_model does
    run_passes(module, pipeline_for(config))
    return module, symbols


def _ranges(symbols) -> str:
    return ",".join(f"{k}={lo}:{opt}:{hi}" for k, (lo, opt, hi) in symbols.items())


@pytest.mark.parametrize("model, profile", [(cnn(batch=2), None), (cnn(), CNN_PROFILE),
                                            (attention_block(), ATTN_PROFILE)],
                         ids=["static", "symbolic-cnn", "symbolic-attention"])
def test_the_pass_shows_the_kernels_the_plan_emits(model, profile):
    module, symbols = _kernel_module(model, profile)
    manifest = build_plan(module, symbols=symbols)[0].to_json()
    planned = [emit_step(step, symbols) for step in manifest["steps"]]
    EmitCuda(symbols=_ranges(symbols)).apply(Context(), module)
    shown = [op for op in module.walk() if isinstance(op, CudaOp)]
    assert len(shown) == len(planned) > 3
    for op, (name, spec) in zip(shown, planned, strict=True):
        assert op.kernel.data == name and op.source.data == spec.source
        assert [g.data for g in op.grid] == [
            g if isinstance(g, int) else expr_text(g) for g in spec.grid]
        assert [b.data for b in op.block] == list(spec.block)
        assert op.shared.data == spec.shared_bytes
        assert [z.data for z in op.sizes or []] == list(spec.size_args)
        head = spec.source[spec.source.index(f" {name}("):]
        args = head[:head.index(")")].split(", ")
        assert args[len(args) - len(spec.size_args):] == [  # after the pointers
            f"const int sz_{z}" for z in spec.size_args]
    if profile:
        assert any(op.sizes for op in shown)
    # the plan reads past the kernel.cuda ops: the same manifest with them in the module
    again = build_plan(module, symbols=symbols)[0].to_json()
    assert again["steps"] == manifest["steps"]


def test_kernel_cuda_prints_and_parses_back():
    module, symbols = _kernel_module(cnn(), CNN_PROFILE)
    EmitCuda(symbols=_ranges(symbols)).apply(Context(), module)
    text = str(module)
    assert '| extern "C" __global__ void ' in text and 'sizes ["N"]' in text
    parsed = Parser(ember_context(), text).parse_module()
    assert str(parsed) == text
    before = [(op.kernel.data, op.source.data) for op in module.walk() if isinstance(op, CudaOp)]
    after = [(op.kernel.data, op.source.data) for op in parsed.walk() if isinstance(op, CudaOp)]
    assert after == before
    # a second run replaces the kernel.cuda ops rather than adding more
    EmitCuda(symbols=_ranges(symbols)).apply(Context(), parsed)
    assert str(parsed) == text


def test_a_source_block_needs_its_bars():
    text = ('builtin.module {\n  func.func @f(%x: tensor<2xf32>) {\n'
            '    kernel.cuda "k_0"(%x) grid [1, 1, 1] block [32, 1, 1] shared 0 : '
            'tensor<2xf32> {\n    extern "C" __global__ void k_0() {}\n    }\n'
            '    func.return\n  }\n}\n')
    with pytest.raises(ParseError, match="starting with '\\|'"):
        Parser(ember_context(), text).parse_module()


def test_symbol_ranges_are_checked():
    assert parse_symbol_ranges("N=1:4:8, S=2:2:2") == {"N": (1, 4, 8), "S": (2, 2, 2)}
    for bad in ("N=4:1:8", "N=1:4", "1N=1:2:3", "N=0:1:2"):
        with pytest.raises(PassError, match="NAME=MIN:OPT:MAX"):
            parse_symbol_ranges(bad)


def test_a_kernel_using_sizes_it_does_not_declare_is_an_error(monkeypatch):
    def own_signature(name, params):  # a template that writes its signature by hand
        n = params["out_shapes"][0][0]
        body = [f"    for (int i = threadIdx.x; i < {n}; i += blockDim.x) out0[i] = in0[i];"]
        return KernelSpec(source("copy", [], f'extern "C" __global__ void {name}('
                                 "const float* in0, float* out0)", body), (1, 1, 1), (32, 1, 1))

    def declared(name, params):
        n = params["out_shapes"][0][0]
        body = [f"    for (int i = threadIdx.x; i < {n}; i += blockDim.x) out0[i] = in0[i];"]
        return KernelSpec(source("copy", [], signature(name, ["float32"], ["float32"]), body),
                          (1, 1, 1), (32, 1, 1))

    step = {"name": "copy_0", "template": "copy",
            "params": {"in_shapes": [["N"]], "in_dtypes": ["float32"], "out_shapes": [["N"]],
                       "out_dtypes": ["float32"]}}
    monkeypatch.setattr("ember.codegen.emit_cuda.emitter", lambda t: own_signature)
    with pytest.raises(EmberError, match=r"uses \['sz_N'\] but its signature does not declare"):
        emit_step(step, {"N": (1, 2, 4)})
    monkeypatch.setattr("ember.codegen.emit_cuda.emitter", lambda t: declared)
    name, spec = emit_step(step, {"N": (1, 2, 4)})
    assert spec.size_args == ("N",)
    assert f"void {name}(const float* __restrict__ in0, float* __restrict__ out0, " \
           "const int sz_N)" in spec.source


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gemm_kernels_declare_their_sizes_whatever_writes_the_signature(dtype):
    # FP16 GEMMs take the tensor-core template, whose signature is its own (gemm_mma)
    step = {"name": "mm", "template": "matmul",
            "params": {"in_shapes": [["N", 128], [128, 64]], "in_dtypes": [dtype, dtype],
                       "out_shapes": [["N", 64]], "out_dtypes": [dtype]}}
    name, spec = emit_step(step, {"N": (1, 64, 256)})
    head = spec.source[spec.source.index(f" {name}("):]
    assert head[:head.index(")")].endswith(", const int sz_N")
    assert spec.size_args == ("N",) and "sz_N" in head[head.index(")"):]
