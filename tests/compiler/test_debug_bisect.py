"""`ember debug bisect`: the pipeline run pass by pass, each stage executed (nn on the
interpreter, kernel-level packed and run on the CPU executor) against onnxruntime; planted wrong
passes (a real pass's rewrite monkeypatched, a test-only pass given by pipeline text, a pass
that raises) must be named, and a correct build must pass every stage."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

import ember.passes
from ember.compiler.builder import BuilderConfig, pipeline_for, precision_config
from ember.compiler.debug import engine_runner
from ember.compiler.debug_bisect import bisect
from ember.compiler.flag_groups import Tolerances
from ember.compiler.pipeline import parse_pipeline_text
from ember.dialects.nn.elementwise import WeightOp
from ember.dialects.weights import weights_of
from ember.passes import fold_batch_norm


def conv_bn_model() -> onnx.ModelProto:
    """conv -> BatchNorm -> relu -> flatten -> gemm: fold-batch-norm has work to do."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w", rng.standard_normal((4, 3, 3, 3)) / 5), ("b", rng.standard_normal(4) / 10),
        ("gamma", rng.uniform(0.5, 1.5, 4)), ("beta", rng.standard_normal(4) / 5),
        ("mean", rng.standard_normal(4) / 5), ("var", rng.uniform(0.5, 2, 4)),
        ("fc", rng.standard_normal((64, 5)) / 8)]]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"],
                         name="bn"),
             h.make_node("Relu", ["n"], ["r"], name="relu"),
             h.make_node("Flatten", ["r"], ["f"], name="flatten"),
             h.make_node("Gemm", ["f", "fc"], ["y"], name="gemm")]
    graph = h.make_graph(nodes, "convbn", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                    [2, 3, 4, 4])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _cpu_passes() -> list[ModulePass]:
    return pipeline_for(BuilderConfig())


def test_a_correct_build_matches_at_every_stage() -> None:
    result = bisect(conv_bn_model(), _cpu_passes())
    assert result.status == 0 and result.first_divergence is None
    names = [s.name for s in result.stages]
    assert names == ["import", *(p.name for p in _cpu_passes())]
    levels = {s.name: s.level for s in result.stages}
    assert levels["import"] == "onnx" and levels["fold-batch-norm"] == "nn"
    assert levels["fuse-epilogues"] == "kernel" and levels["plan-memory"] == "kernel"
    assert all(s.status == "match" for s in result.stages[1:])
    # the figures are real comparisons: float32 rounding, not exact equality everywhere
    assert all(e.max_abs < 1e-4 and e.size == 10 for s in result.stages[1:] for e in s.errors)
    report = result.report()
    assert report.status == 0 and "PASSED" in report.text


def _scaled_folds(factor: float):
    """fold-batch-norm's folding arithmetic (`apply` of its refit recipes) with the folded
    scale (or conv weight) off by `factor`: a planted wrong rewrite in a real pass."""
    real = fold_batch_norm.apply

    def wrong(name, inputs, **kw):
        out = real(name, inputs, **kw)
        return out * factor if name in ("bn_scale", "bn_conv_weight") else out
    return wrong


def test_a_wrong_rewrite_in_a_real_pass_is_named(monkeypatch) -> None:
    monkeypatch.setattr(fold_batch_norm, "apply", _scaled_folds(1.05))
    result = bisect(conv_bn_model(), _cpu_passes())
    first = result.first_divergence
    assert first is not None and first.name == "fold-batch-norm" and first.status == "diverges"
    before = result.stages[1:first.index]
    assert before and all(s.status == "match" for s in before)
    assert first.errors[0].max_abs > 1e-2 and first.errors[0].mismatched > 0
    report = result.report()
    assert report.status == 0
    assert "first diverging pass: fold-batch-norm" in report.text
    assert report.data["first_diverging_pass"] == "fold-batch-norm"


@dataclass(frozen=True)
class PerturbWeights(ModulePass):
    """Test-only: multiplies the first weight the function uses by `factor`."""

    name = "test-perturb-weights"
    factor: float = 1.5

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        op = next(op for op in module.walk() if isinstance(op, WeightOp))
        name = op.ref.data
        store._arrays[name] = (store[name] * self.factor).astype(store[name].dtype)


def test_a_test_only_pass_in_the_pipeline_text_is_named(monkeypatch) -> None:
    monkeypatch.setitem(ember.passes.REGISTRY, "test-perturb-weights", PerturbWeights)
    # a hand-written list without plan-memory: kernel stages get a memory plan on a copy
    passes = parse_pipeline_text("convert-onnx-to-nn,fold-constants,convert-nn-to-kernel,"
                                 "test-perturb-weights{factor=2.0},fuse-elementwise")
    result = bisect(conv_bn_model(), passes)
    assert [s.status for s in result.stages] == ["not run", "match", "match", "match",
                                                 "diverges", "diverges"]
    assert result.first_divergence.name == "test-perturb-weights"
    assert result.first_divergence.level == "kernel"


def test_a_pass_that_raises_is_named(monkeypatch) -> None:
    from ember.passes.fold_scale_shift import FoldScaleShift

    def broken(self, ctx, module):
        raise ValueError("planted failure")

    monkeypatch.setattr(FoldScaleShift, "apply", broken)
    result = bisect(conv_bn_model(), _cpu_passes())
    first = result.first_divergence
    assert first.name == "fold-scale-shift" and first.status == "fails"
    assert "planted failure" in first.note
    assert result.stages[-1] is first  # nothing runs after it


def test_tolerance_decides_what_diverges(monkeypatch) -> None:
    monkeypatch.setattr(fold_batch_norm, "apply", _scaled_folds(1.001))
    strict = bisect(conv_bn_model(), _cpu_passes(), tolerance=Tolerances(1e-6, 1e-6))
    loose = bisect(conv_bn_model(), _cpu_passes(), tolerance=Tolerances(1.0, 1.0))
    assert strict.first_divergence.name == "fold-batch-norm"
    assert loose.first_divergence is None


def test_a_device_that_differs_while_no_pass_does_fails() -> None:
    cpu = engine_runner("cpu")

    def off_by_one(plan, feeds):  # a device whose kernels compute something else
        return {k: v + 1 for k, v in cpu(plan, feeds).items()}

    result = bisect(conv_bn_model(), _cpu_passes(), device_runner=off_by_one)
    assert result.first_divergence is None and result.status == 1
    last = result.stages[-1]
    assert last.level == "plan" and last.status == "diverges"
    assert abs(last.errors[0].max_abs - 1) < 1e-5
    report = result.report()
    assert report.status == 1 and "ember debug tactics" in report.text
    assert report.data["status"] == "fails"
    fine = bisect(conv_bn_model(), _cpu_passes(), device_runner=cpu)
    assert fine.status == 0 and fine.stages[-1].status == "match"


def _ember(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """`python -m ember.compiler.cli debug bisect ARGS`, or the same after `code` plants
    something (a user cannot monkeypatch; the planted pass stands in for a real bug)."""
    if code is None:
        argv = [sys.executable, "-m", "ember.compiler.cli", "debug", "bisect", *args]
    else:
        argv = [sys.executable, "-c", code + "\nimport sys\nfrom ember.compiler.cli import main\n"
                f"sys.exit(main(['debug', 'bisect', *{list(args)!r}]))"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_cli_passes_a_correct_model(tmp_path) -> None:
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "passed" and data["first_diverging_pass"] is None
    assert data["stages"][-1]["name"] == "plan-memory"


def test_cli_names_the_planted_pass(tmp_path) -> None:
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    plant = ("from ember.passes import fold_batch_norm as f\nreal = f.apply\n"
             "f.apply = lambda name, inputs, **kw: real(name, inputs, **kw) * "
             "(1.05 if name in ('bn_scale', 'bn_conv_weight') else 1)")
    done = _ember(str(tmp_path / "m.onnx"), "--seed", "3", code=plant)
    assert done.returncode == 0, done.stderr
    assert "first diverging pass: fold-batch-norm (#4)" in done.stdout
    assert "Traceback" not in done.stderr


def test_cli_bad_usage_is_one_line_and_status_2(tmp_path) -> None:
    done = _ember(str(tmp_path / "missing.onnx"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "missing.onnx" in done.stderr
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"), "--passes", "no-such-pass")
    assert done.returncode == 2 and "no-such-pass" in done.stderr
    assert "Traceback" not in done.stderr
    done = _ember(str(tmp_path / "m.onnx"), "--shapes", "z:1x2")
    assert done.returncode == 2 and "--shapes names z" in done.stderr


def test_cli_dynamic_dims_take_shapes_or_inputs(tmp_path) -> None:
    model = conv_bn_model()
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"))
    assert done.returncode == 2 and "input x has dynamic dims" in done.stderr
    assert "(--shapes x:1x3x4x4)" in done.stderr
    done = _ember(str(tmp_path / "m.onnx"), "--shapes", "x:3x3x4x4", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "passed" and data["stages"][-1]["errors"][0]["size"] == 15
    np.savez(tmp_path / "in.npz", x=np.ones((1, 3, 4, 4), np.float32))
    done = _ember(str(tmp_path / "m.onnx"), "--load-inputs", str(tmp_path / "in.npz"),
                  "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["stages"][1]["errors"][0][
        "size"] == 5
    done = _ember(str(tmp_path / "m.onnx"), "--load-inputs", str(tmp_path / "in.npz"),
                  "--seed", "2")
    assert done.returncode == 2 and "--seed" in done.stderr


def test_cli_help_has_an_example() -> None:
    done = _ember("--help")
    assert done.returncode == 0 and "example" in done.stdout
    assert "ember debug bisect model.onnx" in done.stdout


@pytest.mark.parametrize("flag", ["--fp16", "--arch=sm_90"])
def test_build_flags_with_a_hand_written_pass_list_are_refused(tmp_path, flag) -> None:
    onnx.save(conv_bn_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"), "--passes", "convert-onnx-to-nn", flag)
    assert done.returncode == 2 and flag.split("=")[0] in done.stderr


@pytest.mark.cuda
def test_the_finished_plan_also_runs_on_the_gpu() -> None:
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("no CUDA GPU visible")
    arch = detect_arch()
    result = bisect(conv_bn_model(), pipeline_for(BuilderConfig(target_arch=arch)),
                    device_runner=engine_runner("cuda"), target_arch=arch)
    last = result.stages[-1]
    assert last.level == "plan" and last.name == f"plan on {arch}"
    assert last.status == "match" and result.status == 0


def test_a_gpu_build_is_bisected_on_the_cpu() -> None:
    """sm_90's passes (kmajor weights, choose-formats, select-tactics, emit-cuda) run; every
    stage still executes on the CPU."""
    passes = pipeline_for(BuilderConfig(target_arch="sm_90"))
    result = bisect(conv_bn_model(), passes)
    assert result.status == 0 and result.first_divergence is None
    names = [s.name for s in result.stages]
    assert {"kmajor-matmul-weights", "select-tactics", "emit-cuda"} <= set(names)
    assert all(s.status == "match" for s in result.stages[1:])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the weights overflow FP16 when cast
def test_fp16_overflow_is_pinned_on_assign_precision() -> None:
    from tests.compiler.test_debug_precision import overflow_model

    passes = pipeline_for(precision_config(BuilderConfig(), fp16=True))
    result = bisect(overflow_model(), passes, tolerance=Tolerances(1e-2, 1e-2))
    first = result.first_divergence
    assert first.name == "assign-precision" and first.level == "nn"
    assert first.errors[0].nan > 0
