"""`ember compare` and the shared flag groups: ember against onnxruntime / onnx.reference with
Polygraphy's tolerance semantics, per-layer comparison naming a planted wrong kernel, and
`ember run` building a dynamic model for the shapes of its inputs. Subprocess tests run the
commands as a user does (on the small light models); the rest run in-process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ember.compiler.cli import main
from ember.compiler.compare import compare, compare_arrays, surviving_tensors
from ember.compiler.flag_groups import FlagError, InputData, Tolerances, model_inputs
from ember.compiler.models import LIGHT_MODELS, light_model_path
from ember.runtime import cpu_kernels
from ember.runtime.cuda import cuda_available
from tests.dynamic_models import cnn

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
MODELS = Path(__file__).parent.parent / "models"
# three quick light models by default (~6 s on 2 cores); EMBER_ALL_LIGHT=1 runs all nine
# (~35-80 s: vgg19, densenet121, alexnet and zfnet512 are the slow ones on numpy)
QUICK = ("squeezenet", "shufflenet", "inception_v1")
LIGHT = LIGHT_MODELS if os.environ.get("EMBER_ALL_LIGHT") else QUICK


def ember(*args: str) -> subprocess.CompletedProcess:
    """`python -m ember.compiler.cli ARGS`, as a user runs `ember ARGS`."""
    return subprocess.run([sys.executable, "-m", "ember.compiler.cli", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """conv/relu/pool/gemm/softmax with random weights, batch 2 (static) or N (dynamic)."""
    d = tmp_path_factory.mktemp("compare")
    onnx.save(cnn(2), d / "cnn.onnx")
    onnx.save(cnn("N"), d / "cnn_dynamic.onnx")
    return d


# -- the error statistics: Polygraphy's semantics ------------------------------------------

@pytest.mark.parametrize("stat", ["elemwise", "max", "mean", "median"])
@pytest.mark.parametrize("atol,rtol", [(1e-3, 0.0), (0.0, 1e-2), (1e-4, 1e-4), (0.05, 0.0)])
def test_verdicts_equal_polygraphy_comparators(stat, atol, rtol):
    from polygraphy.comparator.compare import SimpleCompareFunc
    from polygraphy.comparator.struct import IterationResult

    rng = np.random.default_rng(0)
    expected = rng.standard_normal((4, 64)).astype(np.float32)
    got = expected + (rng.standard_normal((4, 64)) * 1e-3).astype(np.float32)
    got[0, :3] = 0.0
    mine = compare_arrays("y", got, expected, Tolerances(atol, rtol, stat))
    theirs = SimpleCompareFunc(atol=atol, rtol=rtol, check_error_stat=stat)(
        IterationResult({"y": got}, runner_name="a"),
        IterationResult({"y": expected}, runner_name="b"))["y"]
    assert mine.passed == bool(theirs)
    assert mine.max_abs == pytest.approx(theirs.max_absdiff, rel=1e-6)
    assert mine.mean_rel == pytest.approx(theirs.mean_reldiff, rel=1e-5)


def test_error_statistics_and_histogram():
    expected = np.array([1.0, 2.0, 4.0, 0.0, 10.0])
    got = np.array([1.0, 2.0 + 1e-6, 4.0 + 0.5, 0.0, 10.0 + 2.0])
    c = compare_arrays("y", got, expected, Tolerances(1e-3, 1e-3, "elemwise"))
    assert (c.max_abs, c.median_abs) == pytest.approx((2.0, 1e-6))
    assert c.mean_abs == pytest.approx((1e-6 + 0.5 + 2.0) / 5)
    assert c.max_rel == pytest.approx(0.2) and c.mismatches == 2 and not c.passed
    # 0 | (1e-7, 1e-6] | (0.1, 1] | > 1
    assert c.histogram[0] == 2 and sum(c.histogram) == 5
    assert c.histogram[-1] == 1 and c.histogram[-2] == 1
    assert compare_arrays("y", got, expected, Tolerances(2.0, 0.0, "max")).passed
    assert compare_arrays("y", got, expected, Tolerances(1e-5, 0.0, "median")).passed
    nan = compare_arrays("y", np.array([np.nan]), np.array([1.0]), Tolerances(1.0, 1.0, "max"))
    assert not nan.passed
    inf = compare_arrays("y", np.array([-np.inf, 1.0, np.inf]), np.array([-np.inf, 1.0, np.inf]),
                         Tolerances(0.0, 0.0))
    assert inf.passed and inf.max_abs == 0
    assert not compare_arrays("y", np.array([np.inf]), np.array([-np.inf]), Tolerances()).passed
    shaped = compare_arrays("y", np.zeros(3), np.zeros(4), Tolerances())
    assert not shaped.passed and "shape [3]" in shaped.problem


def test_per_output_tolerances_and_bad_flags():
    p = _parser()
    args = p.parse_args(["m.onnx", "--atol", "1e-3", "y:0.5", "--rtol", "y:0", "--check-error-stat",
                         "median", "y:max"])
    from ember.compiler.flag_groups import tolerances

    tol = tolerances(args)
    assert tol.of("y") == (0.5, 0.0, "max") and tol.of("z") == (1e-3, 1e-5, "median")
    for bad in (["--atol", "x:abc"], ["--check-error-stat", "p99"], ["--rtol", "-1"]):
        with pytest.raises(FlagError):
            tolerances(p.parse_args(["m.onnx", *bad]))


def _parser():
    import argparse

    from ember.compiler.flag_groups import add_input_flags, add_model_flags, add_tolerance_flags

    p = argparse.ArgumentParser()
    add_model_flags(p)
    add_input_flags(p)
    add_tolerance_flags(p)
    return p


# -- input data -------------------------------------------------------------------------------

def test_random_inputs_are_seeded_and_in_their_ranges():
    from ember.compiler.flag_groups import input_data

    specs = model_inputs(onnx.load(MODELS / "bert_tiny.onnx"))
    args = _parser().parse_args(["m", "--seed", "7", "--input-range", "[-2,2]",
                                 "input_ids:5,9"])
    data = input_data(args)
    feed = data.feed(specs)
    ids = feed["input_ids"]
    assert ids.dtype == np.int64 and ids.min() >= 5 and ids.max() <= 9
    assert set(np.unique(ids)) == {5, 6, 7, 8, 9}  # integers in [lo, hi], both ends
    mask = feed["attention_mask"]
    assert mask.min() >= -2 and mask.max() <= 2
    again = input_data(args).feed(specs)
    assert all(np.array_equal(feed[k], again[k]) for k in feed)
    for bad in (["--input-range", "0"], ["--input-range", "3,1"],
                ["--input-range", "input_ids:0.5,2"], ["--input-range", "nope:0,1"]):
        with pytest.raises(FlagError):
            input_data(_parser().parse_args(["m", *bad])).feed(specs)


def test_loaded_inputs_npz_and_json_are_checked(small, tmp_path):
    specs = model_inputs(onnx.load(small / "cnn.onnx"))
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    (tmp_path / "in.json").write_text(json.dumps({"x": x.astype(np.float64).tolist()}))
    for name in ("in.npz", "in.json"):
        feed = InputData(str(tmp_path / name)).feed(specs)
        assert feed["x"].dtype == np.float32 and np.array_equal(feed["x"], x)
    np.savez(tmp_path / "bad.npz", x=x[:, :2])
    with pytest.raises(FlagError, match=r"input x has shape \[2, 2, 8, 8\]"):
        InputData(str(tmp_path / "bad.npz")).feed(specs)
    np.savez(tmp_path / "extra.npz", x=x, z=x)
    with pytest.raises(FlagError, match="no model input is named z"):
        InputData(str(tmp_path / "extra.npz")).feed(specs)


def test_polygraphy_saved_inputs_load(small, tmp_path):
    from polygraphy.json import save_json

    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    save_json([{"x": x}], str(tmp_path / "inputs.json"))
    out = io.StringIO()
    result = compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime"],
                     inputs=InputData(str(tmp_path / "inputs.json")), out=out)
    assert result.passed and "from " in out.getvalue()


# -- compare, in-process ---------------------------------------------------------------------

@pytest.mark.parametrize("name", LIGHT)
def test_light_model_ember_cpu_against_onnxruntime(name):
    out = io.StringIO()
    result = compare(str(light_model_path(name)), backends=["ember-cpu", "onnxruntime"],
                     out=out)
    assert result.passed, out.getvalue()
    (c,) = result.outputs
    assert c.backend == "ember-cpu" and c.against == "onnxruntime" and c.stat == "elemwise"


def test_three_backends_and_precision_flags(small):
    out = io.StringIO()
    result = compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime", "reference"],
                     out=out)
    text = out.getvalue()
    assert result.passed, text
    assert {(c.backend, c.against) for c in result.outputs} == {
        ("ember-cpu", "onnxruntime"), ("reference", "onnxruntime")}
    assert "abs error histogram" in text and "PASS: 2 of 2" in text
    # FP16 takes effect: strict FP32 tolerances fail, FP16-sized ones pass
    strict = compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime"],
                     tol=Tolerances(1e-7, 1e-7), precision={"fp16": True}, out=io.StringIO())
    assert not strict.passed and strict.outputs[0].max_abs > 1e-6
    loose = compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime"],
                    tol=Tolerances(1e-2, 1e-2), precision={"fp16": True}, out=io.StringIO())
    assert loose.passed and loose.outputs[0].max_abs == strict.outputs[0].max_abs


def test_per_layer_maps_fused_kernels_to_onnx_nodes():
    path = light_model_path("resnet50")
    model = onnx.load(path)
    from ember.compiler.builder import compile as compile_model

    layers = surviving_tensors(model, compile_model(model, device="cpu").steps)
    by_tensor = {layer.tensor: layer for layer in layers}
    # conv1 + BatchNorm + Relu are one kernel: only the Relu's output survives
    assert "r2" in by_tensor and "r0" not in by_tensor and "r1" not in by_tensor
    assert by_tensor["r2"].origin == ("n0", "n1", "n2") and by_tensor["r2"].node == "n2"
    # the residual add and its Relu live in the conv that feeds them: r13 (the shortcut conv's
    # output) survives, read by the add inside that other kernel
    assert by_tensor["r15"].origin == ("n10", "n11", "n14", "n15")
    assert by_tensor["r13"].origin == ("n12", "n13")
    assert layers[-1].tensor == "gpu_0/softmax_1"


def test_per_layer_names_a_planted_wrong_kernel(monkeypatch):
    """The CPU pool kernel adds 1.0: squeezenet's near-uniform softmax hides it at the output,
    and --per-layer names the first max-pool's step and ONNX node."""
    right = cpu_kernels.KERNELS["pool"]
    monkeypatch.setitem(cpu_kernels.KERNELS, "pool",
                        lambda args, params: [r + 1.0 for r in right(args, params)])
    model = onnx.load(light_model_path("squeezenet"))
    first_pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    out = io.StringIO()
    result = compare(str(light_model_path("squeezenet")), backends=["ember-cpu", "onnxruntime"],
                     per_layer=True, out=out)
    text = out.getvalue()
    assert all(c.passed for c in result.outputs)  # the final output does not show it
    assert not result.passed
    layer, c = result.first_diverging("ember-cpu")
    assert layer.node == first_pool.name and layer.op_type == "MaxPool"
    assert layer.step.startswith("pool_") and layer.origin == (first_pool.name,)
    assert c.max_abs == pytest.approx(1.0, rel=1e-5)
    earlier = [c for lay, c in result.layers["ember-cpu"]][:1]
    assert earlier and earlier[0].passed  # the conv before it still matches
    assert (f"first diverging layer of ember-cpu: step {layer.step} (ONNX node(s) "
            f"{first_pool.name})") in text


def test_per_layer_with_three_backends(small):
    """reference vs onnxruntime compares the tensors of ember's plan too."""
    result = compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime", "reference"],
                     per_layer=True, out=io.StringIO())
    assert result.passed
    ember_side = [layer.tensor for layer, _ in result.layers["ember-cpu"]]
    assert ember_side == [layer.tensor for layer, _ in result.layers["reference"]]
    assert ember_side[-1] == "y" and "c" not in ember_side  # conv+relu fused: only r survives


def test_bert_per_layer_passes():
    """BERT-tiny's fused attention, layer norms and GELUs, and its -inf attention mask."""
    out = io.StringIO()
    result = compare(str(MODELS / "bert_tiny.onnx"), backends=["ember-cpu", "onnxruntime"],
                     per_layer=True, tol=Tolerances(1e-5, 1e-4), out=out)
    assert result.passed, out.getvalue()
    assert len(result.layers["ember-cpu"]) > 10


def test_per_layer_passes_unplanted():
    result = compare(str(light_model_path("squeezenet")), backends=["ember-cpu", "onnxruntime"],
                     per_layer=True, out=io.StringIO())
    assert result.passed and len(result.layers["ember-cpu"]) > 20


def test_per_layer_on_a_qdq_model_says_onnxruntime_fuses_it_otherwise(small, monkeypatch):
    """Marked outputs keep onnxruntime from fusing Q/DQ into its integer kernels (session 19
    found a ResNet-50's first divergence moved that way): --per-layer says so for a Q/DQ
    model, and only for one, and checks the first diverging layer again with only its tensor
    marked (a planted wrong kernel: the divergence stands)."""
    from onnx import helper, numpy_helper

    scale, zero = np.float32(0.05), np.int8(0)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
         helper.make_node("Relu", ["d"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8])],
        [numpy_helper.from_array(np.array(scale), "s"),
         numpy_helper.from_array(np.array(zero), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out = io.StringIO()
    assert compare(model, backends=["ember-cpu", "onnxruntime"], per_layer=True,
                   out=out).passed
    assert "changes how onnxruntime fuses it" in out.getvalue()
    assert "checked with only" not in out.getvalue()  # nothing diverges
    right = cpu_kernels.KERNELS["elementwise"]
    monkeypatch.setitem(cpu_kernels.KERNELS, "elementwise",
                        lambda args, params: [r + 1.0 for r in right(args, params)])
    out = io.StringIO()
    assert not compare(model, backends=["ember-cpu", "onnxruntime"], per_layer=True,
                       out=out).passed
    assert "checked with only 'y' marked on onnxruntime: " in out.getvalue()
    assert "(FAIL: it stands)" in out.getvalue()
    plain = io.StringIO()
    compare(str(small / "cnn.onnx"), backends=["ember-cpu", "onnxruntime"], per_layer=True,
            out=plain)
    assert "changes how onnxruntime" not in plain.getvalue()


def test_bad_usage_is_exit_status_2(small, capsys):
    model = str(small / "cnn.onnx")
    for args, message in (
            (["--backends", "ember-cpu,tensorrt"], "unknown backend(s) tensorrt"),
            (["--backends", "ember-cpu"], "two backends or more"),
            (["--against", "reference"], "--against reference is not among"),
            (["--input-range", "a,b"], "--input-range: 'a,b'"),
            (["--seed", "3", "--load-inputs", "x.npz"], "--seed is for random inputs"),
            (["--atol", "y:x"], "--atol: 'y:x'"),
            (["--shapes", "nope:1x2"], "--shapes names nope"),
            (["--per-layer", "--backends", "onnxruntime,reference"], "list an ember backend")):
        assert main(["compare", model, *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exit:  # argparse's own usage errors: 2 as well
        main(["compare", model, "--check-error-stat"])
    assert exit.value.code == 2


def test_dynamic_model_is_built_for_the_given_shapes(small):
    out = io.StringIO()
    result = compare(str(small / "cnn_dynamic.onnx"), backends=["ember-cpu", "onnxruntime"],
                     shapes={"x": (3, 3, 8, 8)}, out=out)
    assert result.passed and result.outputs[0].shape == (3, 10)
    with pytest.raises(FlagError, match=r"input x has dynamic dims \[\?, 3, 8, 8\]"):
        compare(str(small / "cnn_dynamic.onnx"), backends=["ember-cpu", "onnxruntime"],
                out=io.StringIO())


# -- as a user runs them -----------------------------------------------------------------------

def test_ember_compare_command_passes():
    done = ember("compare", str(light_model_path("squeezenet")), "--backends",
                 "ember-cpu,onnxruntime")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ember-cpu vs onnxruntime]" in done.stdout and done.stdout.rstrip().splitlines()[
        -1].startswith("PASS: 1 of 1")


def test_ember_compare_command_fails_and_bad_usage(small, tmp_path):
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    done = ember("compare", str(small / "cnn.onnx"), "--backends", "ember-cpu,onnxruntime",
                 "--fp16", "--atol", "1e-7", "--rtol", "1e-7", "--check-error-stat", "max",
                 "--load-inputs", str(tmp_path / "x.npz"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout and "Traceback" not in done.stderr
    done = ember("compare", str(small / "cnn.onnx"), "--backends", "ember-cpu,nope")
    assert done.returncode == 2 and done.stderr.startswith("ember compare: error: unknown")


# -- ember run: dynamic inputs built for the shapes given (issue 13 item 7) ---------------------

def test_ember_run_builds_a_dynamic_model_for_its_inputs(tmp_path):
    model = MODELS / "bert_tiny_dynamic_seq.onnx"  # input_ids, attention_mask [batch, sequence]
    rng = np.random.default_rng(2)
    feed = {"input_ids": rng.integers(0, 100, (2, 7)).astype(np.int64),
            "attention_mask": np.ones((2, 7), np.int64)}
    np.savez(tmp_path / "in.npz", **feed)
    done = ember("run", str(model), "--inputs", str(tmp_path / "in.npz"), "--outputs",
                 str(tmp_path / "out.npz"))
    assert done.returncode == 0, done.stderr
    got = dict(np.load(tmp_path / "out.npz"))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed),
                    strict=True))
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_ember_run_dynamic_shapes_and_errors(small, capsys, tmp_path):
    assert main(["run", str(small / "cnn_dynamic.onnx"), "--shapes", "x:5x3x8x8"]) == 0
    assert "y: float32[5, 10]" in capsys.readouterr().out
    assert main(["run", str(small / "cnn_dynamic.onnx")]) == 1
    assert "input x has dynamic dims [?, 3, 8, 8]" in capsys.readouterr().err
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 3, 8, 8), np.float32))
    assert main(["run", str(small / "cnn_dynamic.onnx"), "--inputs", str(tmp_path / "x.npz"),
                 "--shapes", "x:4x3x8x8"]) == 1
    assert "give one" in capsys.readouterr().err


def test_ember_run_takes_the_shared_input_data_flags(small, tmp_path):
    """`ember run` reads its inputs with the input-data group the other subcommands share:
    --inputs and --load-inputs are one flag (an .npz or a .json), random inputs take --seed and
    --input-range as `ember compare` does, and the group's errors are one line."""
    model = str(small / "cnn.onnx")
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    (tmp_path / "in.json").write_text(json.dumps({"x": x.tolist()}))
    (want,) = session.run(None, {"x": x})
    for flag, path in (("--inputs", "in.npz"), ("--load-inputs", "in.npz"),
                       ("--inputs", "in.json")):
        done = ember("run", model, flag, str(tmp_path / path), "--outputs",
                     str(tmp_path / "out.npz"))
        assert done.returncode == 0, done.stderr
        np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-5,
                                   atol=1e-6)
    done = ember("run", model, "--seed", "3", "--input-range=-1,1", "--outputs",
                 str(tmp_path / "out.npz"))
    assert done.returncode == 0, done.stderr
    feed = InputData(seed=3, default_range=(-1.0, 1.0)).feed(model_inputs(onnx.load(model)))
    assert feed["x"].min() < 0  # the range took effect
    (want,) = session.run(None, feed)
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-5, atol=1e-6)
    for argv, why in ((["--inputs", str(tmp_path / "in.npz"), "--seed", "3"],
                       "--seed is for random inputs"),
                      (["--input-range", "nosuch:0,1"], "--input-range names nosuch"),
                      (["--inputs", str(tmp_path / "in.txt")], "expected an .npz or a .json")):
        done = ember("run", model, *argv)
        assert done.returncode == 1 and why in done.stderr, (argv, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for command in ("run", "compare"):
        done = ember(command, "--help")
        assert "--load-inputs FILE, --inputs FILE" in done.stdout, (command, done.stdout)


# -- on the GPU --------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_ember_cuda_against_onnxruntime_and_cpu(name):
    out = io.StringIO()
    result = compare(str(light_model_path(name)),
                     backends=["ember-cuda", "ember-cpu", "onnxruntime"],
                     tol=Tolerances(1e-4, 1e-4), out=out)
    assert result.passed, out.getvalue()
    assert len(result.outputs) == 2


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16", "tf32"])
def test_gpu_precisions_per_layer(small, precision):
    out = io.StringIO()
    result = compare(str(small / "cnn.onnx"), backends=["ember-cuda", "onnxruntime"],
                     tol=Tolerances(3e-2, 3e-2, "mean"), precision={precision: True},
                     per_layer=True, out=out)
    assert result.passed, out.getvalue()
    assert result.layers["ember-cuda"]


def test_models_reach_onnxruntime_in_an_ir_version_it_reads(monkeypatch):
    """onnx may be newer than onnxruntime (onnx 1.23 writes IR 14, onnxruntime 1.30 reads 13):
    what ember hands to onnxruntime is lowered to the newest version it loads."""
    import onnx
    from onnx import TensorProto, helper

    from ember.compiler import ort_compat

    newest = ort_compat.max_ir_version()
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, ir_version=onnx.IR_VERSION)
    assert ort_compat.for_onnxruntime(model).ir_version == min(onnx.IR_VERSION, newest)
    monkeypatch.setattr(ort_compat, "max_ir_version", lambda: 9)
    lowered = ort_compat.for_onnxruntime(model)
    assert lowered.ir_version == 9 and model.ir_version == onnx.IR_VERSION  # a copy
    old = helper.make_model(graph, ir_version=8)
    assert ort_compat.for_onnxruntime(old) is old


def test_onnxruntime_float8_outputs_compare_by_value():
    """onnxruntime gives a float8 tensor as its bytes; ember's and the reference's are
    ml_dtypes arrays: compared by value (1.0 is E4M3's 0x38), other outputs untouched."""
    import ml_dtypes

    from ember.compiler.compare import _ort_value

    got = _ort_value(np.array([0x38, 0xB8, 0x7E], np.uint8), "tensor(float8e4m3fn)")
    assert got.dtype == ml_dtypes.float8_e4m3fn
    assert got.astype(np.float32).tolist() == [1.0, -1.0, 448.0]
    plain = np.array([1, 2], np.uint8)
    assert _ort_value(plain, "tensor(uint8)").dtype == np.uint8


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma bmi2\n"


@pytest.mark.parametrize("cpuinfo, saturates", [
    (AVX2_ONLY, True),
    ("flags\t\t: fpu avx2 avx512f avx512_vnni\n", False),
    ("flags\t\t: fpu avx2 avx_vnni\n", False),
    ("flags\t\t: fpu avx2 amx_int8\n", False),
    ("flags\t\t: fpu sse4_2 avx\n", False),  # no AVX2: onnxruntime's SSE kernels widen first
    ("model name\t: something without flags\n", False)])
def test_saturating_int8_kernels_reads_the_cpu_flags(cpuinfo, saturates):
    from ember.compiler.ort_compat import saturating_int8_kernels

    assert saturating_int8_kernels(cpuinfo) is saturates


def test_compare_says_where_onnxruntimes_int8_kernels_saturate(small, monkeypatch):
    """On a CPU with AVX2 and no VNNI, `ember compare` against onnxruntime on a quantized model
    says its fused INT8 kernels saturate there; not elsewhere, not on a float model, not
    without onnxruntime."""
    from onnx import helper, numpy_helper

    from ember.compiler import ort_compat

    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8])],
        [numpy_helper.from_array(np.array(np.float32(0.05)), "s"),
         numpy_helper.from_array(np.array(np.int8(0)), "z")])
    # (opset 21: onnx.reference has no DequantizeLinear older than 19)
    qdq = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    note = "onnxruntime's fused INT8 kernels clip u8 x s8 pair sums to int16"
    for saturates, model, backends, said in (
            (True, qdq, ["ember-cpu", "onnxruntime"], True),
            (False, qdq, ["ember-cpu", "onnxruntime"], False),
            (True, str(small / "cnn.onnx"), ["ember-cpu", "onnxruntime"], False),
            (True, qdq, ["ember-cpu", "reference"], False)):
        monkeypatch.setattr(ort_compat, "saturating_int8_kernels", lambda s=saturates: s)
        out = io.StringIO()
        assert compare(model, backends=backends, out=out).passed
        assert (note in out.getvalue()) is said, (saturates, backends)
