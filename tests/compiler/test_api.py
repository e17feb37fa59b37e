"""The TensorRT-shaped API end to end on the CPU: network or parser -> plan -> engine -> outputs."""

import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import ember
from ember.compiler.builder import build_model
from ember.runtime.engine import InputError
from ember.runtime.plan import write_plan
from tests.onnx_cases import small_cnn

rng = np.random.default_rng(0)



X = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)


def test_parser_builder_runtime_flow():
    builder = ember.Builder()
    network = builder.create_network()
    parser = ember.OnnxParser(network)
    assert parser.parse(small_cnn().SerializeToString())
    config = builder.create_builder_config()
    config.target_arch = None  # a CPU plan anywhere (create_builder_config targets the GPU)
    plan = builder.build_serialized_network(network, config)
    engine = ember.Runtime(device="cpu").deserialize_cuda_engine(plan)
    assert engine.num_io_tensors == 2
    assert engine.get_tensor_name(0) == "x"
    assert engine.get_tensor_mode("y") == ember.TensorIOMode.OUTPUT
    assert engine.get_tensor_shape("x") == (2, 3, 8, 8)
    assert engine.get_tensor_format("x") == ember.TensorFormat.LINEAR
    out = engine.create_execution_context().execute({"x": X})["y"]
    want = ReferenceEvaluator(small_cnn()).run(None, {"x": X})[0]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_parser_keeps_errors():
    network = ember.Builder().create_network()
    parser = ember.OnnxParser(network)
    model = small_cnn()
    model.graph.node[1].op_type = "NoSuchOp"
    assert not parser.parse(model.SerializeToString())
    assert parser.num_errors == 1 and "NoSuchOp" in str(parser.get_error(0))
    assert parser.get_error(0).node_operator() == "NoSuchOp"


def test_layer_api():
    builder = ember.Builder()
    net = builder.create_network()
    x = net.add_input("x", np.float32, (2, 3, 8, 8))
    kernel = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = net.add_convolution(x, 4, (3, 3), kernel, np.zeros(4, np.float32), padding=(1, 1))
    act = net.add_activation(conv.get_output(0), ember.ActivationType.RELU)
    pool = net.add_pooling(act.get_output(0), ember.PoolingType.MAX, (2, 2))
    red = net.add_reduce(pool.get_output(0), ember.ReduceOperation.AVG, (2, 3), keep_dims=False)
    net.mark_output(red.get_output(0))
    engine = ember.Runtime("cpu").deserialize_cuda_engine(
        builder.build_serialized_network(net, ember.BuilderConfig(flags=ember.BuilderFlag.TF32)))
    (name,) = engine.output_names
    got = engine({"x": X})[name]
    # the same computation in numpy
    xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv_ref = np.zeros((2, 4, 8, 8))
    for i in range(3):
        for j in range(3):
            conv_ref += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 8, j:j + 8], kernel[:, :, i, j])
    pooled = np.maximum(conv_ref, 0).reshape(2, 4, 4, 2, 4, 2).max(axis=(3, 5))
    np.testing.assert_allclose(got, pooled.mean(axis=(2, 3)), rtol=1e-5, atol=1e-5)


def test_input_errors_name_what_was_expected():
    engine = ember.compile(small_cnn(), device="cpu")
    with pytest.raises(InputError, match="unknown input.*'z'.*expected x"):
        engine({"x": X, "z": X})
    with pytest.raises(InputError, match="missing input.*'x'"):
        engine({})
    with pytest.raises(InputError, match="expected dtype float32, got float64"):
        engine({"x": X.astype(np.float64)})
    with pytest.raises(InputError, match=r"expected shape \[2, 3, 8, 8\], got \[1, 3, 8, 8\]"):
        engine({"x": X[:1]})


def test_contexts_from_threads_agree():
    engine = ember.compile(small_cnn(), device="cpu")
    want = engine({"x": X})["y"]
    results = []

    def work(seed):
        ctx = engine.create_execution_context()
        x = np.random.default_rng(seed).standard_normal(X.shape).astype(np.float32)
        for _ in range(3):
            results.append((seed, ctx.execute({"x": x})["y"]))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reference = {s: engine({"x": np.random.default_rng(s).standard_normal(X.shape)
                            .astype(np.float32)})["y"] for s in range(4)}
    assert len(results) == 12
    for seed, value in results:
        np.testing.assert_array_equal(value, reference[seed])
    assert want.shape == (2, 5)


def test_backend_convention():
    rep = ember.backend.prepare(small_cnn(), "CPU")
    (y,) = rep.run([X])
    np.testing.assert_allclose(y, ReferenceEvaluator(small_cnn()).run(None, {"x": X})[0],
                               rtol=1e-5, atol=1e-6)
    assert ember.backend.supports_device("CPU")


def test_backend_builds_a_dynamic_model_for_each_set_of_input_shapes():
    model = small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    rep = ember.backend.prepare(model, "CPU")
    reference = ReferenceEvaluator(small_cnn())
    for batch in (1, 2, 1):
        x = np.concatenate([X, X])[:batch]
        (y,) = rep.run([x])
        np.testing.assert_allclose(y[:batch], reference.run(None, {"x": np.concatenate(
            [x, X])[:2]})[0][:batch], rtol=1e-5, atol=1e-6)
    assert len(rep._by_shapes) == 2  # one plan per set of shapes, reused


def test_plan_runs_in_a_process_without_the_compiler(tmp_path):
    manifest, sections = build_model(small_cnn())
    write_plan(tmp_path / "cnn.plan", manifest, sections)
    np.save(tmp_path / "x.npy", X)
    code = f"""
import sys, numpy as np
from ember.runtime.engine import Runtime
engine = Runtime("cpu").load({str(tmp_path / 'cnn.plan')!r})
y = engine({{"x": np.load({str(tmp_path / 'x.npy')!r})}})["y"]
assert "xdsl" not in sys.modules and "onnx" not in sys.modules, sorted(sys.modules)
np.save({str(tmp_path / 'y.npy')!r}, y)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    want = ReferenceEvaluator(small_cnn()).run(None, {"x": X})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)


def test_failed_build_leaves_no_plan(tmp_path):
    from ember.compiler.commands import build

    model = small_cnn()
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(ember.EmberError):
        build(tmp_path / "bad.onnx", tmp_path / "bad.plan")
    assert not any(p.suffix in (".plan", ".tmp") or "plan" in p.name
                   for p in tmp_path.iterdir() if p.name != "bad.onnx")


def test_symbolic_batch_builds_with_a_profile_shape(tmp_path, capsys):
    from ember.compiler.cli import main

    model = small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, tmp_path / "dyn.onnx")
    assert main(["build", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "a.plan")]) == 1
    assert "input(s) 'x' ['N', 3, 8, 8] have dynamic dims" in capsys.readouterr().err
    assert not (tmp_path / "a.plan").exists()
    assert main(["build", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "a.plan"),
                 "--shapes", "x:2x3x8x8"]) == 0
    engine = ember.Runtime("cpu").load(tmp_path / "a.plan")
    assert engine.get_tensor_shape("x") == (2, 3, 8, 8)
    assert main(["build", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "b.plan"),
                 "--shapes", "z:2x3x8x8"]) == 1
    assert "unknown input" in capsys.readouterr().err


def test_cli_builds_a_dynamic_batch_plan_that_runs_any_batch_of_its_range(tmp_path, capsys):
    from ember.compiler.cli import main

    model = small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, tmp_path / "dyn.onnx")
    plan = tmp_path / "dyn.plan"
    assert main(["build", str(tmp_path / "dyn.onnx"), "-o", str(plan), "--min-shapes",
                 "x:1x3x8x8", "--opt-shapes", "x:2x3x8x8", "--max-shapes", "x:6x3x8x8"]) == 0
    assert "dynamic dims (min, opt, max; the arena is planned for max): N (1, 2, 6)" in \
        capsys.readouterr().out
    engine = ember.Runtime("cpu").load(plan)
    assert engine.get_tensor_shape("x") == (-1, 3, 8, 8)
    assert engine.get_tensor_profile_shape("x", 0) == ((1, 3, 8, 8), (2, 3, 8, 8), (6, 3, 8, 8))
    static = ember.compile(small_cnn(), device="cpu")  # batch 2
    for batch in (1, 5):
        x = np.concatenate([X] * 3)[:batch]
        got = engine(x=x)["y"]
        for i in range(batch):
            pair = np.concatenate([x[i:i + 1], x[i:i + 1]])
            np.testing.assert_allclose(got[i], static(x=pair)["y"][0], rtol=1e-6, atol=1e-7)
    assert main(["run", str(plan), "--device", "cpu"]) == 0  # random inputs at the opt shape
    assert "y: float32[2, " in capsys.readouterr().out
    assert main(["build", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "c.plan"),
                 "--min-shapes", "x:1x3x8x8", "--max-shapes", "x:6x3x8x8"]) == 1
    assert "go together" in capsys.readouterr().err
    assert not (tmp_path / "c.plan").exists()


def test_ember_run_reads_and_writes_npz(tmp_path, capsys):
    from ember.compiler.cli import main
    from ember.compiler.commands import save_npz

    manifest, sections = build_model(small_cnn())
    write_plan(tmp_path / "cnn.plan", manifest, sections)
    save_npz(tmp_path / "in.npz", {"x": X})
    assert main(["run", str(tmp_path / "cnn.plan"), "--inputs", str(tmp_path / "in.npz"),
                 "--outputs", str(tmp_path / "out.npz"), "--device", "cpu"]) == 0
    with np.load(tmp_path / "out.npz") as out:
        want = ReferenceEvaluator(small_cnn()).run(None, {"x": X})[0]
        np.testing.assert_allclose(out["y"], want, rtol=1e-5, atol=1e-6)
    np.save(tmp_path / "x.npy", X)
    assert main(["run", str(tmp_path / "cnn.plan"), "--inputs", str(tmp_path / "x.npy")]) == 1
    assert "not a single array" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["run", str(tmp_path / "cnn.plan"), "--inputs", str(tmp_path / "bad.npz")]) == 1
    assert "cannot read inputs" in capsys.readouterr().err
    save_npz(tmp_path / "odd.npz", {"file": X})
    with np.load(tmp_path / "odd.npz") as odd:
        np.testing.assert_array_equal(odd["file"], X)


def test_build_verbose_prints_the_layer_table(tmp_path, capsys):
    from ember.compiler.cli import main

    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    assert main(["build", str(tmp_path / "cnn.onnx"), "-o", str(tmp_path / "cnn.plan"),
                 "--verbose"]) == 0
    out = capsys.readouterr().out
    conv_line = next(line for line in out.splitlines() if line.strip().startswith("conv_"))
    # `ember build` allows TF32 as trtexec does: the FP32 conv may use it
    assert "2x4x8x8 NCHW tf32" in conv_line and conv_line.endswith("conv, relu")  # relu fused
    assert "kernels: 5" in out.splitlines()  # flatten is a view: no kernel
