"""`ember build --dump-dir`: every stage dumped with its weights, and replayed by `ember-opt` to
the same text; weights that live with the module and round-trip through text."""

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from xdsl.dialects.builtin import StringAttr, TensorType, f32

from ember.compiler.builder import BuilderConfig, BuilderFlag, pipeline_for
from ember.compiler.cli import main
from ember.compiler.ember_opt import EmberOptMain
from ember.compiler.models import light_model_path
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.opt import load_module
from ember.compiler.pack import pack
from ember.compiler.pipeline import lower, parse_pipeline_text, pipeline_text, run_passes
from ember.compiler.plan_builder import build_plan
from ember.dialects import ember_context
from ember.dialects.kernel import CudaOp, ElementwiseOp, LaunchOp
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.weights import parse_module, print_module, weight_types, weights_of
from ember.errors import EmberError, PassError
from ember.runtime.plan import read_plan


def _block() -> onnx.ModelProto:
    """Conv + BatchNormalization + Relu + Gemm with named initializers: folding makes weights."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [init("conv.weight", 8, 3, 3, 3), init("conv.bias", 8), init("bn.scale", 8),
             init("bn.bias", 8), init("bn.mean", 8),
             numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "bn.var"),
             init("fc.weight", 5, 8), init("fc.bias", 5)]
    nodes = [h.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
                         ["b"]),
             h.make_node("Relu", ["b"], ["r"]),
             h.make_node("GlobalAveragePool", ["r"], ["p"]),
             h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1)]
    graph = h.make_graph(nodes, "block", [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 5])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _stages(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".mlir")


def _replay(directory: Path, capsys) -> str:
    """What `ember-opt DIR/00-input.mlir -p "$(cat DIR/pipeline.txt)"` prints (in process)."""
    capsys.readouterr()
    EmberOptMain(args=[str(directory / "00-input.mlir"), "-p",
                       (directory / "pipeline.txt").read_text().strip()]).run()
    return capsys.readouterr().out


@pytest.mark.parametrize("shapes", [["--shapes", "x:2x3x8x8"],
                                    ["--min-shapes", "x:1x3x8x8", "--opt-shapes", "x:2x3x8x8",
                                     "--max-shapes", "x:4x3x8x8"]], ids=["static", "dynamic"])
def test_small_model_dump_replays_to_the_last_stage(tmp_path, capsys, shapes):
    model = tmp_path / "block.onnx"
    onnx.save(_block(), model)
    dump = tmp_path / "stages"
    assert main(["build", str(model), "-o", str(tmp_path / "block.plan"), "--dump-dir",
                 str(dump), *shapes]) == 0
    stages = _stages(dump)
    passes = pipeline_for(BuilderConfig(flags=BuilderFlag.TF32))  # `ember build` allows TF32
    assert [p.name for p in stages] == ["00-input.mlir"] + [
        f"{i:02d}-{p.name}.mlir" for i, p in enumerate(passes, 1)]
    assert (dump / "pipeline.txt").read_text() == pipeline_text(passes) + "\n"
    assert _replay(dump, capsys) == stages[-1].read_text()

    # the weights are written once, every initializer by its ONNX name, and each stage names
    # that file rather than holding them
    saved = np.load(dump / "weights.npz")
    for t in _block().graph.initializer:
        np.testing.assert_array_equal(saved[t.name], numpy_helper.to_array(t))
    for stage in stages:
        text = stage.read_text()
        assert text.endswith('\n{-#\n  external_resources: {\n    ember: {\n      weights: '
                             '"weights.npz"\n    }\n  }\n#-}\n') and "0x" not in text

    # every stage re-parses with its weights and origins, and replays the rest of the pipeline
    # to the last stage; the last one packs into the same plan the build made, weight bytes
    # included
    for k, stage in enumerate(stages):
        module = load_module(stage)
        for name in weight_types(module):
            np.testing.assert_array_equal(weights_of(module)[name], saved[name])
        run_passes(module, parse_pipeline_text((dump / "pipeline.txt").read_text().strip())[k:])
        assert print_module(module, debuginfo=True) == stages[-1].read_text(), stage.name
    with read_plan(tmp_path / "block.plan") as built:
        symbols = {k: tuple(v) for k, v in built.manifest.get("symbols", {}).items()}
        manifest, sections = build_plan(load_module(stages[-1]), symbols=symbols)
        assert len(built.manifest["steps"]) == len(manifest.steps)
        assert bytes(built.section("weights")) == bytes(sections["weights"])
    assert "conv.weight+" in stages[-1].read_text()  # BatchNorm folded into a new weight


def _static(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for vi in [*model.graph.input, *model.graph.output]:
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    return model


def test_light_resnet50_for_sm90_dump_replays_with_ember_opt(tmp_path):
    dump = tmp_path / "stages"
    plan = tmp_path / "resnet50.plan"
    assert main(["build", str(light_model_path("resnet50")), "-o", str(plan), "--arch", "sm_90",
                 "--autotune", "off", "--dump-dir", str(dump)]) == 0
    stages = _stages(dump)
    assert stages[0].name == "00-input.mlir" and stages[-3].name.endswith("-select-tactics.mlir")
    assert stages[-2].name.endswith("-plan-memory.mlir")
    assert stages[-1].name.endswith("-emit-cuda.mlir")
    last = stages[-1].read_text()
    assert last.count("kernel.launch") >= 57 and "tactic" in last and 'loc(fused["n0"' in last
    assert "ember.arena_bytes = " in last and last.count("arena = array<i64: ") >= 57
    # the last stage shows each kernel op's tactic and device: its CUDA kernel (kernel.cuda,
    # name = template + hash of the source) or its host fallback with the reason
    module = load_module(stages[-1])
    ops = list(next(iter(module.ops)).body.block.ops)
    kernels = [op for op in ops if isinstance(op, LaunchOp | ElementwiseOp)]
    for op in kernels:
        after = ops[ops.index(op) + 1]
        assert isinstance(after, CudaOp) and after.kernels[0].owner is op or \
            "cuda_fallback" in op.attributes
        if isinstance(op, LaunchOp) and op.template.data in ("conv", "matmul"):
            assert op.tactic is not None
    # the plan packed from the last stage is the plan the build wrote, byte for byte
    assert pack(module, target_arch="sm_90").plan_bytes() == plan.read_bytes()
    pipeline = (dump / "pipeline.txt").read_text().strip()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "ember.compiler.ember_opt", str(stages[0]),
                             "-p", pipeline], capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == last


def test_weights_round_trip_inline_with_any_name_and_dtype(tmp_path):
    names = {"onnx::Conv_1/w \"q\"": np.arange(6, dtype=np.float32).reshape(2, 3),
             "bf": np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16),
             "flags": np.array([True, False, True]),
             "idx": np.array([[3, -1]], dtype=np.int64)}
    nodes, outputs = [], []
    for i, (name, value) in enumerate(names.items()):
        nodes.append(h.make_node("Identity", [name], [f"y{i}"]))
        outputs.append(h.make_tensor_value_info(
            f"y{i}", onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            if value.dtype != ml_dtypes.bfloat16 else T.BFLOAT16, list(value.shape)))
    inits = [numpy_helper.from_array(v, n) if v.dtype != ml_dtypes.bfloat16 else
             h.make_tensor(n, T.BFLOAT16, v.shape, v.astype(np.float32).tolist())
             for n, v in names.items()]
    model = h.make_model(h.make_graph(nodes, "g", [], outputs, inits),
                         opset_imports=[h.make_opsetid("", 17)])
    module = import_onnx(model)
    plain = print_module(module)
    assert "{-#" not in plain  # elided unless asked
    text = print_module(module, inline_weights=True)
    assert "dialect_resources" in text and '"0x04000000' in text
    again = parse_module(ember_context(), text, tmp_path / "m.mlir")
    assert print_module(again, inline_weights=True) == text
    for name, value in names.items():
        got = weights_of(again)[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        np.testing.assert_array_equal(got.astype(np.float64), value.astype(np.float64))

    # a weights file holding the bf16 weight, as a dump writes it, reads back as bf16
    from ember.dialects.weights import save_weights

    save_weights(weights_of(module), tmp_path / "weights.npz")
    referring = print_module(module, weights_file="weights.npz")
    back = parse_module(ember_context(), referring, tmp_path / "m.mlir")
    assert weights_of(back)["bf"].dtype == ml_dtypes.bfloat16
    assert print_module(back) == referring


def test_a_laid_out_weight_round_trips_inline_in_its_stored_order(tmp_path):
    """An NHWC conv weight (logical [O, I, KH, KW]) is stored OHWI: its inline blob reads back
    in that shape, as its weights-file form does (it was reshaped to the logical shape, so a
    3x3 kernel over 8 channels came back scrambled and failed the type check)."""
    model = h.make_model(h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [h.make_tensor_value_info("x", T.FLOAT16, [2, 8, 6, 6])],
        [h.make_tensor_value_info("y", T.FLOAT16, [2, 4, 6, 6])],
        [numpy_helper.from_array(
            np.arange(4 * 8 * 3 * 3, dtype=np.float16).reshape(4, 8, 3, 3), "w")]),
        opset_imports=[h.make_opsetid("", 17)])
    module = import_onnx(model)
    run_passes(module, parse_pipeline_text(
        'convert-onnx-to-nn,convert-nn-to-kernel,assign-layouts{conv_nhwc=true '
        'half_conv_nhwc=true io_formats="NHWC"}'))
    [name] = [n for n in weights_of(module).names() if n.endswith("OHWI")]
    stored = weights_of(module)[name]
    assert stored.shape == (4, 3, 3, 8)
    text = print_module(module, inline_weights=True)
    again = parse_module(ember_context(), text, tmp_path / "m.mlir")
    np.testing.assert_array_equal(weights_of(again)[name], stored)
    assert print_module(again, inline_weights=True) == text
    # an NC4HW4 weight of 3 channels is stored with a 4th, zero lane: its blob's byte count is
    # the stored shape's
    packed = parse_module(ember_context(), """builtin.module {
  func.func @main() -> (tensor<4x3x3x3xf32, #nn.layout<NC4HW4>>) {
    %0 = nn.weight "p" : tensor<4x3x3x3xf32, #nn.layout<NC4HW4>>
    func.return %0 : tensor<4x3x3x3xf32, #nn.layout<NC4HW4>>
  }
}""", tmp_path / "p.mlir")
    lanes = np.arange(4 * 1 * 3 * 3 * 4, dtype=np.float32).reshape(4, 1, 3, 3, 4)
    weights_of(packed).add("p", lanes)
    text = print_module(packed, inline_weights=True)
    np.testing.assert_array_equal(
        weights_of(parse_module(ember_context(), text, tmp_path / "p.mlir"))["p"], lanes)


def test_a_weight_not_in_the_file_elides_the_reference(tmp_path, capsys):
    model = tmp_path / "block.onnx"
    onnx.save(_static(_block(), 1), model)
    assert main(["build", str(model), "-o", str(tmp_path / "p.plan"), "--dump-dir",
                 str(tmp_path / "d")]) == 0
    module = load_module(tmp_path / "d" / "00-input.mlir")
    assert "weights.npz" in print_module(module)
    key = weights_of(module).add("extra", np.zeros(3, np.float32))
    block = next(iter(module.ops)).body.block
    block.insert_op_before(WeightOp.create(properties={"ref": StringAttr(key)},
                                           result_types=[TensorType(f32, [3])]), block.last_op)
    assert "{-#" not in print_module(module)


def test_opt_output_elides_weights_unless_asked(tmp_path, capsys):
    model = tmp_path / "block.onnx"
    onnx.save(_static(_block(), 1), model)
    assert main(["opt", str(model), "--passes", "convert-onnx-to-nn"]) == 0
    out = capsys.readouterr().out
    assert "{-#" not in out and 'nn.weight "conv.weight"' in out
    assert main(["opt", str(model), "--passes", "convert-onnx-to-nn", "--print-weights",
                 "-o", str(tmp_path / "full.mlir")]) == 0
    full = load_module(tmp_path / "full.mlir")
    np.testing.assert_array_equal(weights_of(full)["fc.weight"],
                                  numpy_helper.to_array(_block().graph.initializer[6]))
    assert str(lower(full, "default")) == str(lower(import_onnx(model), "default"))


def test_a_stage_without_its_weights_file_is_a_clear_error(tmp_path, capsys):
    model = tmp_path / "block.onnx"
    onnx.save(_static(_block(), 1), model)
    dump = tmp_path / "d"
    assert main(["build", str(model), "-o", str(tmp_path / "p.plan"), "--dump-dir",
                 str(dump)]) == 0
    (dump / "weights.npz").unlink()
    with pytest.raises(EmberError, match="cannot read weights .*weights.npz"):
        load_module(dump / "04-fold-batch-norm.mlir")


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_bad_dump_dir_is_a_one_line_error_and_writes_no_plan(tmp_path, capsys, where):
    model = tmp_path / "block.onnx"
    onnx.save(_static(_block(), 1), model)
    (tmp_path / "file").write_text("")
    dump = tmp_path / "file" if where == "a file" else tmp_path / "file" / "stages"
    plan = tmp_path / "p.plan"
    assert main(["build", str(model), "-o", str(plan), "--dump-dir", str(dump)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ember build: error: --dump-dir ") and err.count("\n") == 1
    assert not plan.exists()


def test_a_failing_build_leaves_no_plan_and_its_stages_replay(tmp_path, capsys, monkeypatch):
    from xdsl.passes import ModulePass

    from ember.compiler import builder

    class Fail(ModulePass):
        name = "fail"

        def apply(self, ctx, module):
            raise PassError("this pass fails on purpose")

    real = builder.pipeline_for
    monkeypatch.setattr(builder, "pipeline_for", lambda config: real(config)[:4] + [Fail()])
    model = tmp_path / "block.onnx"
    onnx.save(_static(_block(), 1), model)
    dump, plan = tmp_path / "d", tmp_path / "p.plan"
    (dump).mkdir()
    (dump / "40-stale.mlir").write_text("")
    (dump / "notes.txt").write_text("mine")
    assert main(["build", str(model), "-o", str(plan), "--dump-dir", str(dump)]) == 1
    assert "this pass fails on purpose" in capsys.readouterr().err
    assert not plan.exists() and not list(tmp_path.glob("*.tmp")) and not list(
        tmp_path.glob(".p.plan*"))
    assert [p.name for p in _stages(dump)] == ["00-input.mlir", "01-convert-onnx-to-nn.mlir",
                                                "02-fold-qdq.mlir", "03-fold-constants.mlir",
                                                "04-fold-batch-norm.mlir"]
    assert (dump / "notes.txt").read_text() == "mine"
    assert (dump / "pipeline.txt").read_text().endswith(",fail\n")
    module = load_module(dump / "04-fold-batch-norm.mlir")
    assert any("+" in n for n in weight_types(module))  # the folded weight, from weights.npz
