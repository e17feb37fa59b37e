"""tabulate-int8-chains (GPU builds): a QDQ GELU after an INT8 matmul (onnxruntime's quantizer:
Q/DQ around each of Div, Erf, Add, Mul, Mul) reads one table entry a element instead of
computing erf and five exact quantizes; the plan's results on the CPU executor are bit for bit
those of the same build without the pass, and the kernels' `lookup` reads what the CPU's
does (emulated threads; the GPU)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.codegen.emit_cuda import emit_step
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.passes import tabulate_int8_chains
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cpu_kernels.elementwise import lookup
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator
from tests.passes.test_fold_qdq import _init, _quantized


def _gelu_mlp() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """MatMul + Add, the exported Erf GELU, MatMul + Add."""
    rng = np.random.default_rng(2)
    consts = [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("sqrt2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a"]),
             h.make_node("Div", ["a", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
             h.make_node("Add", ["e", "one"], ["p"]), h.make_node("Mul", ["a", "p"], ["g0"]),
             h.make_node("Mul", ["g0", "half"], ["g"]), h.make_node("MatMul", ["g", "w2"], ["m2"]),
             h.make_node("Add", ["m2", "b2"], ["y"])]
    graph = h.make_graph(
        nodes, "gelu", [h.make_tensor_value_info("x", T.FLOAT, [4, 16, 32])],
        [h.make_tensor_value_info("y", T.FLOAT, [4, 16, 32])],
        [_init(rng, "w1", 32, 64), _init(rng, "b1", 64), _init(rng, "w2", 64, 32),
         _init(rng, "b2", 32), *consts])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (4, 16, 32)}


def _silu_cnn() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """Conv, SiLU (x * Sigmoid(x), EfficientNet's), Conv, pooling and a Gemm."""
    rng = np.random.default_rng(3)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Sigmoid", ["c1"], ["s1"]), h.make_node("Mul", ["c1", "s1"], ["a1"]),
             h.make_node("Conv", ["a1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             h.make_node("GlobalAveragePool", ["c2"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = h.make_graph(
        nodes, "silu", [h.make_tensor_value_info("x", T.FLOAT, [2, 16, 8, 8])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 10])],
        [_init(rng, "w1", 32, 16, 3, 3), _init(rng, "b1", 32), _init(rng, "w2", 32, 32, 3, 3),
         _init(rng, "b2", 32), _init(rng, "fc", 10, 32), _init(rng, "fcb", 10)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 16, 8, 8)}


def _lookups(manifest: dict, template: str | None = None) -> list[dict]:
    out = []
    for step in manifest["steps"]:
        if template is not None and step["template"] != template:
            continue
        params = step["params"]
        for region in (params.get("region"), params.get("epilogue")):
            out += [op for op in (region or {}).get("ops", ()) if op["fn"] == "lookup"]
    return out


def _config(fp16: bool, arch: str = "sm_90", autotune: bool = False) -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=autotune)
    if fp16:
        config.set_flag(BuilderFlag.FP16)
    return config


def _run(manifest, sections, feed, device="cpu") -> np.ndarray:
    engine = Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute(feed)["y"]


@pytest.mark.parametrize("fp16", [False, True])
def test_a_qdq_gelu_reads_a_table_and_its_results_stand(tmp_path, monkeypatch, fp16):
    _, qdq, shapes = _quantized(tmp_path, _gelu_mlp, symmetric=True)
    feed = {"x": np.random.default_rng(5).standard_normal(shapes["x"]).astype(np.float32)}
    manifest, sections = build_model(onnx.load(qdq), _config(fp16))
    tables = _lookups(manifest)
    assert tables and all(len(op["table"]) == 256 for op in tables)
    got = _run(manifest, sections, feed)
    monkeypatch.setattr(tabulate_int8_chains, "MIN_OPS", 10 ** 6)  # no chain is long enough
    plain, plain_sections = build_model(onnx.load(qdq), _config(fp16))
    assert not _lookups(plain)
    np.testing.assert_array_equal(got, _run(plain, plain_sections, feed))


def test_a_qdq_silu_after_a_conv_reads_a_table_in_the_conv_epilogue(tmp_path, monkeypatch):
    """A conv's epilogue (its CUDA C compiled by NVRTC in the build) holds the table of
    SiLU's tail; the results are the same bits as without the pass."""
    _, qdq, shapes = _quantized(tmp_path, _silu_cnn, symmetric=True)
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    manifest, sections = build_model(onnx.load(qdq), _config(True))
    assert _lookups(manifest, "conv")
    assert b"__device__ const" in sections["cuda_source"]
    got = _run(manifest, sections, feed)
    monkeypatch.setattr(tabulate_int8_chains, "MIN_OPS", 10 ** 6)
    plain, plain_sections = build_model(onnx.load(qdq), _config(True))
    np.testing.assert_array_equal(got, _run(plain, plain_sections, feed))


def test_a_cpu_build_computes_the_chain():
    """CPU builds leave the chain as it is (the pass belongs to GPU builds)."""
    model, _ = _gelu_mlp()
    manifest, _ = build_model(model, BuilderConfig())
    assert not _lookups(manifest)


def _lookup_params(source: str, out: str, table: list[int], shape=(4, 64)) -> dict:
    """An elementwise kernel reading a table at its 8-bit input."""
    ops = [{"fn": "lookup", "args": [0], "dtype": out, "table": table}]
    return {"region": {"ops": ops, "result": 1}, "in_shapes": [list(shape)],
            "in_dtypes": [source], "out_shapes": [list(shape)], "out_dtypes": [out]}


@pytest.mark.parametrize("source, out", [("int8", "int8"), ("int8", "float32"),
                                         ("uint8", "float16"), ("int8", "bfloat16")])
def test_the_kernels_lookup_reads_the_cpu_kernels_entries(source, out, tmp_path):
    import ml_dtypes  # noqa: F401  (numpy's bfloat16)

    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    rng = np.random.default_rng(4)
    if out in ("int8",):
        entries = rng.integers(-128, 128, 256)
        table = [int(v) for v in entries]
    else:
        values = (rng.standard_normal(256) * 3).astype(out)
        values[7] = np.inf
        table = [int(v) for v in values.view(f"uint{8 * values.itemsize}")]
    params = _lookup_params(source, out, table)
    info = np.iinfo(source)
    x = rng.integers(info.min, info.max + 1, (4, 64)).astype(source)
    (want,) = KERNELS["elementwise"]([x], params)
    np.testing.assert_array_equal(want, lookup(x, table, np.dtype(out)))
    name, spec = emit_step({"name": "elementwise", "template": "elementwise", "params": params})
    assert spec.source.count("[256] = {") == 1  # the table, once, at file scope
    got = simt_emulator.run(spec, name, [x], [4, 64], np.dtype(out), tmp_path)
    np.testing.assert_array_equal(got.view(np.uint8), np.asarray(want).view(np.uint8))


@pytest.mark.parametrize("source, out, lo, hi", [("int8", "int8", 0, 127),   # a ReLU
                                                  ("int8", "int8", -20, 35),
                                                  ("uint8", "uint8", 3, 255),
                                                  ("int8", "int32", -128, 127)])
def test_a_clamping_table_is_a_clamp_with_the_same_entries(source, out, lo, hi, tmp_path):
    """A table that clamps its index to [lo, hi] (a ReLU folded into an int8 chain) becomes
    min/max arithmetic, no table at file scope and no load; the kernel reads what the table
    holds."""
    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    info = np.iinfo(source)
    table = [min(max(v, lo), hi) for v in range(info.min, info.max + 1)]
    params = _lookup_params(source, out, table)
    name, spec = emit_step({"name": "elementwise", "template": "elementwise", "params": params})
    assert "[256] = {" not in spec.source and "min(max((int)(" in spec.source
    assert f"), {lo}), {hi})" in spec.source
    x = np.arange(info.min, info.max + 1).astype(source).reshape(4, 64)
    got = simt_emulator.run(spec, name, [x], [4, 64], np.dtype(out), tmp_path)
    np.testing.assert_array_equal(got, lookup(x, table, np.dtype(out)))
    # one entry off the clamp: a table again
    table[5] += 1
    _, spec = emit_step({"name": "elementwise", "template": "elementwise",
                         "params": _lookup_params(source, out, table)})
    assert spec.source.count("[256] = {") == 1


def test_a_lookup_of_a_wider_integer_is_refused():
    with pytest.raises(Exception, match="256-entry table at 8-bit integers"):
        lookup(np.arange(4, dtype=np.int16), list(range(256)), np.dtype("int8"))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("make", [_gelu_mlp, _silu_cnn], ids=["gelu", "silu"])
def test_a_qdq_table_on_the_gpu(tmp_path, fp16, make):
    from ember.compiler.builder import detect_arch

    _, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    feed = {"x": np.random.default_rng(6).standard_normal(shapes["x"]).astype(np.float32)}
    manifest, sections = build_model(onnx.load(qdq), _config(fp16, detect_arch(), True))
    assert _lookups(manifest)
    got = _run(manifest, sections, feed, "cuda")
    want = _run(manifest, sections, feed, "cpu")
    # the int8 sums are exact; float rounding may move a value across a quantization boundary
    close = np.isclose(got, want, rtol=0, atol=1e-6)
    assert close.mean() > 0.99
    rel = np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want)
    assert rel < 2e-2
