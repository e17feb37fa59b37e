"""The builder's pipeline is a spec (`pipeline_for(config)`): every pass it runs, with options,
printable in `ember-opt -p` syntax and parsed back to the same passes."""

from __future__ import annotations

import io

import onnx
import pytest

from ember.compiler.builder import BuilderConfig, BuilderFlag, pipeline_for
from ember.compiler.commands import build
from ember.compiler.pipeline import parse_pipeline_text, pipeline_text
from ember.errors import PipelineError
from tests.filecheck.models import conv_relu_add


def _names(config: BuilderConfig) -> list[str]:
    return [p.name for p in pipeline_for(config)]


def test_default_build_pipeline_ends_with_the_kernel_passes():
    names = _names(BuilderConfig())
    assert names[0] == "convert-onnx-to-nn"
    assert names[-7:] == ["convert-nn-to-kernel", "assign-layouts", "fuse-elementwise",
                          "fuse-epilogues", "cancel-requantize", "fuse-strided-reads",
                          "plan-memory"]
    hopper = _names(BuilderConfig(target_arch="sm_90"))
    assert hopper[hopper.index("fuse-epilogues") + 1:][:3] == ["fuse-shortcut-convs",
                                                               "cancel-requantize",
                                                               "tabulate-int8-chains"]
    assert "tabulate-int8-chains" not in names  # GPU builds only
    assert "fuse-shortcut-convs" not in _names(BuilderConfig(target_arch="sm_80"))


def test_assign_layouts_takes_the_config_as_options():
    config = BuilderConfig(target_arch="sm_90", packed_format=True)
    config.set_allowed_io_formats("NCHW", "NHWC")
    text = pipeline_text(pipeline_for(config))
    assert ('assign-layouts{io_formats="NCHW,NHWC" conv_nhwc=false packed=true '
            'half_conv_nhwc=true}') in text
    assert "assign-layouts" not in _names(BuilderConfig(assign_layouts=False))


def test_unoptimized_config_runs_the_unoptimized_pipeline():
    assert _names(BuilderConfig(optimize=False)) == [
        "convert-onnx-to-nn", "fold-constants", "convert-nn-to-kernel", "plan-memory"]


@pytest.mark.parametrize("config", [BuilderConfig(), BuilderConfig(target_arch="sm_90"),
                                    BuilderConfig(pipeline="legalize", packed_format=True)])
def test_pipeline_text_parses_back_to_the_same_passes(config):
    text = pipeline_text(pipeline_for(config))
    assert pipeline_text(parse_pipeline_text(text)) == text


@pytest.mark.parametrize(("text", "message"), [
    ("fold-constants,no-such-pass", "unknown pass"),
    ("assign-layouts{colour=1}", "bad pass options"),
    ("assign-layouts{", "cannot parse"),
])
def test_bad_pipeline_text_is_a_pipeline_error(text, message):
    with pytest.raises(PipelineError, match=message):
        parse_pipeline_text(text)


def test_build_verbose_prints_the_pipeline(tmp_path):
    path = tmp_path / "block.onnx"
    onnx.save(conv_relu_add(), path)
    out = io.StringIO()
    build(path, tmp_path / "block.plan", shapes="x:1x4x8x8", verbose=True, out=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("pipeline: "))
    # `ember build` allows TF32 as trtexec does (the API's plain BuilderConfig() is strict)
    assert line == "pipeline: " + pipeline_text(pipeline_for(BuilderConfig(flags=BuilderFlag.TF32)))


def test_build_verbose_prints_the_pipeline_it_ran(tmp_path):
    """A wildcard per-layer precision prints expanded, as the build ran assign-precision: one
    pin per node it matched (the pipeline line re-parses as that pass list)."""
    path = tmp_path / "block.onnx"
    onnx.save(conv_relu_add(), path)
    out = io.StringIO()
    build(path, tmp_path / "block.plan", shapes="x:1x4x8x8", verbose=True, out=out,
          layer_precisions="*:fp32")
    line = next(x for x in out.getvalue().splitlines() if x.startswith("pipeline: "))
    (assign,) = [p for p in parse_pipeline_text(line.removeprefix("pipeline: "))
                 if p.name == "assign-precision"]
    assert sorted(assign.layer_precisions.split(",")) == ["add1:fp32", "conv1:fp32",
                                                          "relu1:fp32"]


def _matmul_model() -> onnx.ModelProto:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((512, 256), np.float32), "fc.weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 256])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cuda_build_runs_select_tactics_and_the_plan_records_its_choice():
    from ember.codegen.templates.gemm_tiles import choose, tactic_params
    from ember.compiler.builder import build_model

    config = BuilderConfig(target_arch="sm_90", autotune=False)
    assert _names(config)[-3:] == ["select-tactics", "plan-memory", "emit-cuda"]
    # CPU plans have no tactics and no CUDA kernels
    assert not {"select-tactics", "emit-cuda"} & set(_names(BuilderConfig()))
    assert _names(BuilderConfig(target_arch="sm_90", optimize=False))[-2:] == [
        "plan-memory", "emit-cuda"]
    manifest, sections = build_model(_matmul_model(), config)
    (step,) = manifest["steps"]
    chosen = tactic_params(choose(64, 256, 512))
    assert step["params"]["tactic"] == chosen
    source = sections["cuda_source"].decode()
    tile = chosen["tile"]
    assert f"{tile[0]}x{tile[1]}x{tile[2]} tile" in source


def test_a_build_verifies_once_at_the_end_and_names_where_to_look(monkeypatch):
    """The builder verifies after its last pass only (verification is most of a build's time);
    IR a pass broke is still refused, with a pointer to `ember opt`, which verifies each pass."""
    from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, i64
    from xdsl.passes import ModulePass

    from ember.compiler import builder
    from ember.compiler.builder import build_model
    from ember.compiler.pipeline import run_passes
    from ember.dialects.kernel import ElementwiseOp, LaunchOp
    from ember.errors import PassError, PipelineError

    class Break(ModulePass):
        name = "break"

        def apply(self, ctx, module):  # a negative arena offset: the kernel verifier refuses it
            op = next(o for o in module.walk() if isinstance(o, LaunchOp | ElementwiseOp))
            op.properties["arena"] = DenseArrayBase.from_list(i64, [-1])

    real_pipeline, real_verify = builder.pipeline_for, ModuleOp.verify
    calls = []

    def counting_verify(self, *args, **kwargs):
        calls.append(1)
        return real_verify(self, *args, **kwargs)

    monkeypatch.setattr(builder, "pipeline_for",
                        lambda config: [*real_pipeline(config), Break()])
    monkeypatch.setattr(ModuleOp, "verify", counting_verify)
    with pytest.raises(PassError, match=r"does not verify after the pipeline \(its last pass: "
                                        r"break; `ember opt` verifies after each pass"):
        build_model(_matmul_model(), BuilderConfig())
    assert len(calls) == 1
    with pytest.raises(PipelineError, match="verify must be"):
        run_passes(ModuleOp([]), [], verify="sometimes")
